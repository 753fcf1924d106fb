// The production entry point: the bundle `npm start` and the systemd unit run. It must serve the API,
// the dashboard and a task like the sources do, and load no optional integration that is not
// configured (pg, the OpenAI SDK, the Telegram client, SurrealDB): the loaded-module list says so.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir, waitFor } from './helpers.js';
import { processConfig, startFactory, type FactoryProcess } from './process-harness.js';

const OPTIONAL = /\/node_modules\/(pg|openai|node-telegram-bot-api|surrealdb|@surrealdb\/node)\//;
const MODULE_LOG_HOOK = path.join(ROOT, 'test', 'fixtures', 'module-log.mjs');

// Inside the package (the bundle finds static/ and the migrations from the package root), one per run.
const outdir = path.join(ROOT, 'dist', `bundle-test-${process.pid}`);
let entry = '';

beforeAll(async () => {
  const { bundle } = (await import(path.join(ROOT, 'scripts', 'bundle.mjs'))) as { bundle: (dir: string) => Promise<string> };
  entry = await bundle(outdir);
}, 60_000);

afterAll(() => rmSync(outdir, { recursive: true, force: true }));

async function startBundle(config: Record<string, unknown>): Promise<{ proc: FactoryProcess; modules: () => string[] }> {
  const dir = tempDir();
  const log = path.join(dir, 'modules.txt');
  const proc = await startFactory(dir, config, { FACTORY_TEST_MODULE_LOG: log }, { nodeArgs: ['--import', MODULE_LOG_HOOK, entry] });
  const modules = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
  return { proc, modules };
}

async function stop(proc: FactoryProcess): Promise<void> {
  proc.child.kill('SIGTERM');
  expect(await proc.exited).toBe(0);
}

describe('the bundled service', () => {
  it('serves the API, the dashboard and a task, and loads no optional integration that is not configured', async () => {
    const dir = tempDir();
    const { proc, modules } = await startBundle(processConfig(dir, { memory: { enabled: false } }));
    try {
      expect((await proc.api('GET', '/health')).json).toMatchObject({ status: 'ok', db: 'ok', memory: { status: 'disabled' } });
      const page = await fetch(`${proc.url}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('/static/dashboard/main.js');
      expect((await fetch(`${proc.url}/static/dashboard/main.js`)).status).toBe(200);
      const created = await proc.api('POST', '/api/tasks?auto_run=true', {
        title: 'Look around',
        description: '[fake:noop]',
        repo: 'acme/web',
        agent_type: 'researcher',
      });
      expect(created.status).toBe(201);
      const final = await proc.taskEnded(created.json.id, ['done', 'failed']);
      expect(final).toMatchObject({ status: 'done', error: '' });
    } finally {
      await stop(proc);
    }
    const loaded = modules();
    // The log is real: it holds the bundle itself and the SQLite driver it opened.
    expect(loaded.some((u) => u.endsWith(`/${path.basename(outdir)}/main.js`))).toBe(true);
    expect(loaded.some((u) => u.includes('/node_modules/better-sqlite3/'))).toBe(true);
    expect(loaded.filter((u) => OPTIONAL.test(u))).toEqual([]);
  });

  it('opens the embedded memory store after the port is bound, and loads SurrealDB only for it', async () => {
    const dir = tempDir();
    const { proc, modules } = await startBundle(processConfig(dir));
    try {
      const first = (await proc.api('GET', '/health')).json.memory.status;
      expect(['starting', 'ok']).toContain(first);
      await waitFor(async () => (await proc.api('GET', '/health')).json.memory.status === 'ok', {
        what: 'memory ready',
        timeoutMs: 30_000,
      });
      expect(modules().some((u) => u.includes('/node_modules/surrealdb/'))).toBe(true);
      expect(modules().filter((u) => /\/node_modules\/(pg|openai|node-telegram-bot-api)\//.test(u))).toEqual([]);
    } finally {
      await stop(proc);
    }
  });
});
