// Agent start latency: from "a task is asked to run" to "the agent process is running".
//
// Factory: POST /api/tasks?auto_run=true (app.inject) → scheduler claim → clone-cache sync (ls-remote,
// fetch) → worktree prepare → prompt → spawn. End marker: the fake claude's `started_at` in
// FAKE_CLAUDE_LOG, written by the agent process itself as its first action (ms resolution, wall clock).
//
// Baseline: the least a correct orchestrator must do to start an agent on a fresh branch: one
// `git worktree add -b <branch> <dir> origin/main` in an already-fetched bare clone, then spawn the same
// fake claude (same executable, same argv shape). Same end marker (`started_at` in its log), so node's
// own start-up cost is in both and cancels out of the difference; the time to the first stdout line is
// reported too. Runs alternate Factory/baseline so machine drift hits both alike; one warm-up each
// (Factory's first task creates the clone cache, which is a one-off cost, not start latency).
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import {
  bareClone,
  git,
  isMain,
  log,
  median,
  nowMs,
  percentile,
  pick,
  removeTemp,
  round,
  runStandalone,
  spawnFake,
  startFactory,
  tempDir,
  type BenchFactory,
  type Row,
} from './lib.js';

const N = pick(10, 4);

function startedAt(logFile: string, match: (r: Record<string, any>) => boolean): number {
  if (!existsSync(logFile)) throw new Error(`no fake claude log at ${logFile}`);
  const recs = readFileSync(logFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>);
  const rec = recs.filter(match).at(-1);
  if (!rec) throw new Error('fake claude did not log this run');
  return Date.parse(rec.started_at as string);
}

interface FactoryRun {
  started: number;
  queue: number;
  workspace: number;
  /** From the worktree being ready to the agent running (prompt, spawn). */
  launch: number;
}

async function factoryOnce(f: BenchFactory, i: number): Promise<FactoryRun> {
  const t0 = Date.now();
  const id = await f.createTask('Do nothing.\n[fake:noop]', `bench start ${i}`);
  const end = await f.statusAt(id, ['done', 'in_review', 'failed'], 30_000);
  if (end.status === 'failed') throw new Error(`task ${id} failed: ${(await f.env.services.tasks.get(id))?.error}`);
  // Breakdown from the task's own system log lines (their ts is taken when written, ms resolution).
  const sys = (await f.env.services.repos.logs.list(id, { limit: 100 })).filter((r) => r.stream === 'system');
  const at = (prefix: string) => Date.parse(sys.find((r) => r.line.startsWith(prefix))?.ts ?? 'x') - t0;
  const started = startedAt(f.claudeLog, (r) => r.env?.FACTORY_TASK_ID === String(id)) - t0;
  return {
    started,
    queue: at('preparing workspace'),
    workspace: at('worktree ') - at('preparing workspace'),
    launch: started - at('worktree '),
  };
}

interface Baseline {
  cache: string;
  dir: string;
  logFile: string;
}

async function baselineOnce(b: Baseline, i: number): Promise<{ started: number; firstLine: number }> {
  const wt = path.join(b.dir, `wt-${i}`);
  const branch = `bench/${i}`;
  const t0 = Date.now();
  const p0 = nowMs();
  await git(b.cache, 'worktree', 'add', '--quiet', '-b', branch, wt, 'origin/main');
  const run = spawnFake('Do nothing.\n[fake:noop]', {
    cwd: wt,
    env: { FAKE_CLAUDE_LOG: b.logFile, FAKE_CLAUDE_STATE_DIR: path.join(b.dir, 'state') },
  });
  const first = await run.firstLine;
  await run.done;
  const started = startedAt(b.logFile, (r) => r.cwd === wt) - t0;
  // Clean-up is outside the measured span (Factory's clean-up also happens after the agent started).
  await git(b.cache, 'worktree', 'remove', '--force', wt);
  await git(b.cache, 'branch', '-D', branch);
  return { started, firstLine: first - p0 };
}

export async function run(): Promise<Row[]> {
  log(`agent-start: ${N} runs each`);
  const f = await startFactory();
  const dir = tempDir();
  try {
    const b: Baseline = { cache: path.join(dir, 'cache.git'), dir, logFile: path.join(dir, 'claude-log.jsonl') };
    await bareClone(path.join(f.origins, 'acme', 'web.git'), b.cache);
    await factoryOnce(f, 0);
    await baselineOnce(b, 0);
    const runs: FactoryRun[] = [];
    const base: number[] = [];
    const firstLines: number[] = [];
    for (let i = 1; i <= N; i++) {
      runs.push(await factoryOnce(f, i));
      const r = await baselineOnce(b, i);
      base.push(r.started);
      firstLines.push(r.firstLine);
    }
    const fac = runs.map((r) => r.started);
    const overhead = median(fac) - median(base);
    return [
      {
        name: 'agent-start (create → agent running)',
        factory: median(fac),
        baseline: median(base),
        unit: 'ms, median',
        target: '≤ 1.2× (resolved at ≤ 1.5×)',
        notes:
          `N=${N}; factory p90 ${round(percentile(fac, 90))}, baseline p90 ${round(percentile(base, 90))}; ` +
          `overhead ${round(overhead)} ms (create→claim ${round(median(runs.map((r) => r.queue)))}, ` +
          `workspace sync+prepare ${round(median(runs.map((r) => r.workspace)))}, prompt+spawn ${round(median(runs.map((r) => r.launch)))}); baseline to 1st stdout line ${round(median(firstLines))} ms`,
      },
    ];
  } finally {
    await f.close();
    removeTemp(dir);
  }
}

if (isMain(import.meta.url)) runStandalone(run);
