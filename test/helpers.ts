import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { loadConfig, type Config } from '../src/config.js';
import { createServices, type Services, type Wired, type WireOptions } from '../src/composition/root.js';
import type { Executor } from '../src/queue/types.js';
import { buildApp } from '../src/server/app.js';
import { freshDatabase, type TestDatabase } from './pg.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function tempDir(prefix = 'factory-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export interface TestEnvOptions {
  /** Runs tasks instead of the agent pipeline (tests of the queue). */
  executor?: Executor;
  overrides?: Record<string, unknown>;
  env?: Record<string, string>;
  dir?: string;
  /** Wire the real agent execution and integrations (default: only when no executor is given). */
  wire?: boolean;
  wireOptions?: WireOptions;
  start?: boolean;
}

export interface TestEnv {
  dir: string;
  config: Config;
  services: Services;
  app: FastifyInstance;
  /** The wired parts (executor, engine, board, plane…) when wired. */
  wired?: Wired;
  close(): Promise<void>;
}

const dirDatabases = new Map<string, TestDatabase>();

/** A Factory instance on a fresh data dir (or `dir`), with the shipped config.yml and test overrides. */
export async function createTestEnv(opts: TestEnvOptions = {}): Promise<TestEnv> {
  const dir = opts.dir ?? tempDir();
  // The "postgres" vitest project runs the same files on a fresh PostgreSQL database each. A test
  // that passes its own `dir` restarts on it: the database belongs to the dir and outlives close().
  let pgDb: TestDatabase | undefined;
  if (process.env.FACTORY_TEST_DIALECT === 'postgres' && !(opts.overrides && 'database' in opts.overrides)) {
    const reused = opts.dir ? dirDatabases.get(opts.dir) : undefined;
    const db = reused ?? (await freshDatabase());
    if (opts.dir) dirDatabases.set(opts.dir, db);
    else pgDb = db;
    opts = { ...opts, overrides: { ...opts.overrides, database: { url: db.url } } };
  }
  const config = loadConfig({
    configPath: path.join(ROOT, 'config.yml'),
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      TMPDIR: process.env.TMPDIR ?? '/tmp',
      ...opts.env,
    },
    dotenv: false,
    overrides: { data_dir: path.join(dir, 'data'), log_level: 'silent', queue: { poll_interval_ms: 50 }, ...opts.overrides },
  });
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const services = await createServices(config, logger, { executor: opts.executor, integrations: opts.wire, wire: opts.wireOptions });
  const wired = services.wired;
  const app = await buildApp(services, { plugins: services.routes });
  await app.ready();
  if (opts.start !== false) await services.start();
  let closed = false;
  return {
    dir,
    config,
    services,
    app,
    wired,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await services.stop();
      await pgDb?.drop();
    },
  };
}

/** Polls `fn` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 25));
  }
  throw new Error(`timed out waiting for ${opts.what ?? 'condition'} (last value: ${JSON.stringify(last)})`);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A controllable executor: each task waits until released (or aborted). */
export function gatedExecutor() {
  const gates = new Map<number, () => void>();
  const started: number[] = [];
  let concurrent = 0;
  let maxSeen = 0;
  const executor = async (task: { id: number }, ctx: { signal: AbortSignal }) => {
    started.push(task.id);
    concurrent++;
    maxSeen = Math.max(maxSeen, concurrent);
    try {
      await new Promise<void>((resolve, reject) => {
        gates.set(task.id, resolve);
        ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      });
      return { status: 'done' as const };
    } finally {
      concurrent--;
      gates.delete(task.id);
    }
  };
  return {
    executor,
    started,
    get concurrent() {
      return concurrent;
    },
    get maxSeen() {
      return maxSeen;
    },
    release(id: number) {
      gates.get(id)?.();
    },
    releaseAll() {
      for (const g of [...gates.values()]) g();
    },
    isWaiting(id: number) {
      return gates.has(id);
    },
  };
}
