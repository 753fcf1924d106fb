// Runs Factory as a real child process (as `npm start` does) for restart, crash and shutdown tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { ROOT, waitFor } from './helpers.js';
import { makeOrigin } from './agent-harness.js';
import { FAKE_CLAUDE_PATH } from './fakes/claude-helpers.js';

/** A config for a Factory process working on a fresh local origin acme/web with the fake claude. */
export function processConfig(dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const origins = path.join(dir, 'origins');
  makeOrigin(origins, 'acme', 'web');
  return {
    github: { clone_base: origins, api_url: 'http://127.0.0.1:9' },
    agent: { command: FAKE_CLAUDE_PATH, kill_grace_seconds: 1, sandbox: 'off' }, // tests look at agent pids from outside
    default_org: 'acme',
    ...extra,
  };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface FactoryProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  api<T = any>(method: string, p: string, body?: unknown): Promise<{ status: number; json: T }>;
  /** The task as GET /api/tasks/:id shows it once its status is one of `statuses` (30 s at most). */
  taskEnded(id: number, statuses: string[]): Promise<any>;
}

export interface StartOptions {
  /** Called with the child as soon as it is spawned (before /health answers). */
  onSpawn?: (child: ChildProcess) => void;
  /** How long /health may take (default 30 s). */
  timeoutMs?: number;
  /** Node's arguments (default: the sources through tsx, `--import tsx src/main.ts`). */
  nodeArgs?: string[];
}

/**
 * Writes <dir>/config.yml from `config` and starts `tsx src/main.ts` (or `opts.nodeArgs`) on a free port. A process that
 * does not come up is killed before the error is thrown.
 */
export async function startFactory(
  dir: string,
  config: Record<string, unknown>,
  env: Record<string, string> = {},
  opts: StartOptions = {},
): Promise<FactoryProcess> {
  const port = await freePort();
  const configPath = path.join(dir, 'config.yml');
  mkdirSync(dir, { recursive: true });
  writeFileSync(configPath, stringify({ data_dir: path.join(dir, 'data'), ...config, server: { port } }));
  let out = '';
  const child = spawn(process.execPath, opts.nodeArgs ?? ['--import', 'tsx', path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/root',
      TMPDIR: process.env.TMPDIR ?? '/tmp',
      FACTORY_CONFIG: configPath,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  opts.onSpawn?.(child);
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  const url = `http://127.0.0.1:${port}`;
  const api = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(url + p, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };
  let exitedEarly = false;
  void exited.then(() => {
    exitedEarly = true;
  });
  try {
    await waitFor(
      async () => {
        if (exitedEarly) throw new Error(`factory exited during start:\n${out}`);
        try {
          return (await fetch(`${url}/health`)).ok;
        } catch {
          return false;
        }
      },
      { timeoutMs: opts.timeoutMs ?? 30_000, what: 'factory /health' },
    );
  } catch (err) {
    if (!exitedEarly) child.kill('SIGKILL');
    throw err;
  }
  const taskEnded = (id: number, statuses: string[]) =>
    waitFor(
      async () => {
        const t = (await api('GET', `/api/tasks/${id}`)).json;
        return statuses.includes(t.status) ? t : undefined;
      },
      { what: `task ${id} ${statuses.join(' or ')}`, timeoutMs: 30_000 },
    );
  return { child, url, output: () => out, exited, api, taskEnded };
}
