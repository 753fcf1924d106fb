// Boot time of the production entry point (the bundle of src/main.ts that npm start runs) until GET
// /health answers 200, and time to exit after SIGTERM, with a populated database (10,000 tasks,
// 100,000 log lines) versus an empty one; and the bundle against the sources through tsx.
//
// Baseline: the very same command on a data dir whose database has the same schema and no rows
// (created with the same openDb, so migrations are not part of either side). Both pay for node and
// loading Factory; the ratio is what 10k tasks add to boot (recovery scan, counts in /health…).
// Runs alternate, after one unmeasured warm-up boot of each command (fills tsx's compile cache).
// The child is started by boot-lib.ts (minimal environment, a copy of config.yml, 127.0.0.1 only).
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { openDb } from '../src/db/connection.js';
import { LogsRepo } from '../src/db/repositories/logs.js';
import { TasksRepo } from '../src/db/repositories/tasks.js';
import { bootFactory, buildBundle, prepareBootRoot, stopFactory } from './boot-lib.js';
import { ROOT, isMain, log, median, nowMs, pick, removeTemp, round, runStandalone, tempDir, type Row } from './lib.js';

const TASKS = 10_000;
const LOGS_PER_TASK = 10;
const N = pick(5, 2);

async function populate(dataDir: string, tasks: number): Promise<void> {
  mkdirSync(dataDir, { recursive: true });
  const db = await openDb(path.join(dataDir, 'factory.db'));
  try {
    if (tasks === 0) return;

    // Finished work only: queued/in_progress rows would make the booted Factory start agents.
    const ends = ['done', 'done', 'done', 'in_review', 'failed', 'cancelled'] as const;
    await db.transaction(async (tx) => {
      const repo = new TasksRepo(tx);
      const logs = new LogsRepo(tx);
      for (let i = 1; i <= tasks; i++) {
        const t = await repo.create({
          title: `Historic task ${i}`,
          description: `Do thing number ${i} in the web app.`,
          repo: 'acme/web',
          agent_type: 'coder',
        });
        await repo.transition(t.id, ['queued'], ends[i % ends.length]!, {
          result_summary: 'Implemented the change.',
          completed_at: new Date().toISOString(),
        });
        const ts = new Date().toISOString();
        await logs.appendMany(
          Array.from({ length: LOGS_PER_TASK }, (_, k) => ({
            task_id: t.id,
            ts,
            stream: 'stdout' as const,
            line: JSON.stringify({
              type: 'assistant',
              message: { content: [{ type: 'text', text: `working on step ${k} of task ${i}` }] },
            }),
          })),
        );
      }
    });
  } finally {
    await db.close();
  }
}

async function bootOnce(root: string, dataDir: string, nodeArgs: string[], command?: string): Promise<{ bootMs: number; exitMs: number }> {
  const booted = await bootFactory(root, dataDir, nodeArgs, command);
  return { bootMs: booted.bootMs, exitMs: await stopFactory(booted) };
}

export async function run(): Promise<Row[]> {
  const root = tempDir('factory-bench-boot-');
  const bundleDir = path.join(ROOT, 'dist', `bundle-bench-${process.pid}`);
  try {
    prepareBootRoot(root);
    const empty = path.join(root, 'empty');
    const full = path.join(root, 'full');
    const tp = nowMs();
    await populate(empty, 0);
    await populate(full, TASKS);
    log(`boot: db with ${TASKS} tasks / ${TASKS * LOGS_PER_TASK} log lines built in ${round(nowMs() - tp)} ms; ${N} boots each`);
    const bundled = await buildBundle(bundleDir);
    const sources = ['--import', 'tsx', 'src/main.ts'];
    await bootOnce(root, empty, bundled);
    await bootOnce(root, empty, sources);
    // The README's command: npm, then scripts/start.mjs (which builds dist/bundle if it is stale:
    // the unmeasured first start does that).
    await bootOnce(root, empty, ['start'], 'npm');
    const e: Array<{ bootMs: number; exitMs: number }> = [];
    const f: Array<{ bootMs: number; exitMs: number }> = [];
    const t: Array<{ bootMs: number; exitMs: number }> = [];
    const n: Array<{ bootMs: number; exitMs: number }> = [];
    for (let i = 0; i < N; i++) {
      e.push(await bootOnce(root, empty, bundled));
      f.push(await bootOnce(root, full, bundled));
      t.push(await bootOnce(root, empty, sources));
      n.push(await bootOnce(root, empty, ['start'], 'npm'));
    }
    const m = (xs: typeof e, k: 'bootMs' | 'exitMs') => median(xs.map((x) => x[k]));
    return [
      {
        name: `boot to /health 200 (${TASKS / 1000}k tasks vs empty db)`,
        factory: m(f, 'bootMs'),
        baseline: m(e, 'bootMs'),
        unit: 'ms, median',
        target: '≤ 500 ms (factory column)',
        notes: `N=${N}; node dist/bundle/main.js (the bundle npm start runs); overhead ${round(m(f, 'bootMs') - m(e, 'bootMs'))} ms`,
      },
      {
        name: 'boot to /health 200, empty db: the bundle vs the sources through tsx',
        factory: m(e, 'bootMs'),
        baseline: m(t, 'bootMs'),
        unit: 'ms, median',
        target: '≤ 500 ms (factory column)',
        notes: `N=${N}; node --import tsx src/main.ts is what npm start ran before`,
      },
      {
        name: 'boot to /health 200, empty db: npm start vs node on the bundle',
        factory: m(n, 'bootMs'),
        baseline: m(e, 'bootMs'),
        unit: 'ms, median',
        target: '≤ 500 ms (factory column)',
        notes: `N=${N}; npm start (npm, scripts/start.mjs's freshness check, then the bundle) against node dist/bundle/main.js`,
      },
      {
        name: `exit after SIGTERM (${TASKS / 1000}k tasks vs empty db)`,
        factory: m(f, 'exitMs'),
        baseline: m(e, 'exitMs'),
        unit: 'ms, median',
        notes: `N=${N}; exit code 0 required`,
      },
    ];
  } finally {
    removeTemp(root);
    rmSync(bundleDir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) runStandalone(run);
