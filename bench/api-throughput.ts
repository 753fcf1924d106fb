// GET /api/tasks?limit=100 over real HTTP on 127.0.0.1, 200 tasks in the database (each with a few
// log lines, so `last_output` is filled as in real use).
//
// Baseline: a bare Fastify app (same Fastify version, no hooks, no logger) whose route returns, as a
// static in-memory array, the very 100 objects Factory returned — so the response bytes and the
// JSON.stringify cost are identical and the ratio isolates Factory's per-request work (query
// validation, SQLite list + last-line lookups, row → JSON mapping, hooks).
// Same client for both: a worker thread (own event loop) with 20 keep-alive connections in a closed
// loop for a fixed time, after a short warm-up. The server runs on the main thread.
import { LogsRepo } from '../src/db/repositories/logs.js';
import { Worker } from 'node:worker_threads';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { createTestEnv } from '../test/helpers.js';
import { isMain, log, pick, removeTemp, round, runStandalone, tempDir, type Row } from './lib.js';

const TASKS = 200;
const CONCURRENCY = 20;
const DURATION_MS = pick(3000, 1500);
const WARMUP_MS = pick(500, 300);

interface LoadResult {
  requests: number;
  errors: number;
  bytes: number;
  elapsedMs: number;
  rps: number;
  p50: number;
  p99: number;
}

function load(url: string, durationMs: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./http-client.mjs', import.meta.url), { workerData: { url, concurrency: CONCURRENCY, durationMs } });
    w.once('message', (m: LoadResult) => resolve(m));
    w.once('error', reject);
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`load worker exited ${code}`));
    });
  });
}

async function measure(app: FastifyInstance, path: string): Promise<LoadResult> {
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `${address}${path}`;
  await load(url, WARMUP_MS);
  const r = await load(url, DURATION_MS);
  if (r.errors > 0) throw new Error(`${r.errors} failed requests against ${url}`);
  return r;
}

export async function run(): Promise<Row[]> {
  log(`api-throughput: ${TASKS} tasks, ${CONCURRENCY} connections, ${DURATION_MS} ms`);
  const dir = tempDir();
  const env = await createTestEnv({ dir, start: false, overrides: { default_org: 'acme' } });
  let bare: FastifyInstance | undefined;
  try {
    const { services } = env;
    const statuses = ['done', 'in_review', 'failed', 'cancelled'] as const;
    await services.db.transaction(async (tx) => {
      for (let i = 1; i <= TASKS; i++) {
        const t = await services.repos.tasks.in(tx).create({
          title: `Benchmark task ${i}: make the widget list sortable`,
          description: `Please change the widget list so that it can be sorted by name and date. Task ${i}. `.repeat(3),
          repo: 'acme/web',
          agent_type: 'coder',
        });
        if (i % 10 !== 0)
          await services.repos.tasks
            .in(tx)
            .transition(t.id, ['queued'], statuses[i % statuses.length]!, { result_summary: 'Implemented the change.' });
        const ts = new Date().toISOString();
        await new LogsRepo(tx).appendMany(
          Array.from({ length: 5 }, (_, k) => ({
            task_id: t.id,
            ts,
            stream: 'stdout' as const,
            line: JSON.stringify({ type: 'assistant', message: { content: [{ type: 'text', text: `step ${k} of task ${i}` }] } }),
          })),
        );
      }
    });
    const path = '/api/tasks?limit=100';
    const sample = await env.app.inject({ url: path });
    const items = sample.json() as unknown[];
    if (sample.statusCode !== 200 || items.length !== 100)
      throw new Error(`unexpected /api/tasks answer: ${sample.statusCode}, ${items.length} items`);

    const fac = await measure(env.app, path);
    await env.close();

    bare = Fastify({ logger: false });
    bare.get('/api/tasks', async () => items);
    const base = await measure(bare, path);
    return [
      {
        name: 'api-throughput (GET /api/tasks, 100 of 200)',
        factory: fac.rps,
        baseline: base.rps,
        unit: 'req/s',
        higherIsBetter: true,
        target: '≥ 0.5×',
        notes:
          `${CONCURRENCY} keep-alive conns, ${DURATION_MS} ms; ${round(sample.body.length / 1024)} KiB/resp; ` +
          `p50 ${round(fac.p50, 2)}/${round(base.p50, 2)} ms, p99 ${round(fac.p99, 2)}/${round(base.p99, 2)} ms (factory/baseline)`,
      },
    ];
  } finally {
    await env.close();
    await bare?.close();
    removeTemp(dir);
  }
}

if (isMain(import.meta.url)) runStandalone(run);
