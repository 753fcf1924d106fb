// Shared helpers for the benchmarks: timing, statistics, the result table, temp dirs, ports, git,
// and a Factory instance wired like src/main.ts but pointed at loopback fakes.
// Benchmarks never use absolute thresholds: each reports Factory next to a bare baseline measured
// in the same run on the same machine, and the ratio between them.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAKE_CLAUDE_PATH } from '../test/fakes/claude-helpers.js';
import { FakeGitHub } from '../test/fakes/http/index.js';
// test/helpers.ts has no vitest import (checked): it builds Factory exactly as the tests do.
import { createTestEnv, type TestEnv } from '../test/helpers.js';

export { FAKE_CLAUDE_PATH };
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const QUICK = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true';
export const GITHUB_TOKEN = 'ghp_BENCHTOKEN_abcdef1234567890';

/** `full` normally, `quick` under BENCH_QUICK=1. */
export const pick = <T>(full: T, quick: T): T => (QUICK ? quick : full);

export interface Row {
  name: string;
  factory: number;
  baseline: number;
  unit: string;
  notes?: string;
  /** For throughputs: the ratio is still factory/baseline, the table marks the direction. */
  higherIsBetter?: boolean;
  /** The goal this row is held to, as written in the issue ("≤ 1.5×", "≥ 0.5×", "≤ 50 ms"). */
  target?: string;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const nowMs = () => performance.now();

export function median(xs: number[]): number {
  return percentile(xs, 50);
}

/** Linear-interpolated percentile (p in 0..100); NaN for an empty list. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const idx = (p / 100) * (s.length - 1);
  const lo = Math.floor(idx);
  const hi = Math.ceil(idx);
  return s[lo]! + (s[hi]! - s[lo]!) * (idx - lo);
}

export const round = (x: number, digits = 1) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);

function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a >= 1000 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2);
}

export function ratioText(r: Row): string {
  if (!Number.isFinite(r.factory) || !Number.isFinite(r.baseline) || r.baseline === 0) return '-';
  return `${(r.factory / r.baseline).toFixed(2)}x${r.higherIsBetter ? ' (higher=better)' : ''}`;
}

export function formatTable(rows: Row[]): string {
  const head = ['name', 'factory', 'baseline', 'ratio', 'target', 'unit/notes'];
  const body = rows.map((r) => [
    r.name,
    fmt(r.factory),
    fmt(r.baseline),
    ratioText(r),
    r.target ?? '-',
    [r.unit, r.notes].filter(Boolean).join('; '),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

// ---------------------------------------------------------------- temp dirs, ports, processes

const tempDirs = new Set<string>();
process.once('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** A temp dir that is removed by removeTemp() or, at the latest, when the process exits. */
export function tempDir(prefix = 'factory-bench-'): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

export function removeTemp(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

// One implementation for tests and benchmarks.
export { freePort } from '../test/process-harness.js';

/** Resolves when the child has exited (immediately if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/**
 * One GET on `agent` (keep-alive as the caller set it up): its latency from the request to the last
 * byte, and its body. Anything but a 200, and no answer within 10 s, is an error.
 */
export function timedGet(agent: http.Agent, url: string): Promise<{ ms: number; body: string }> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    const req = http.get(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('end', () => {
        const ms = nowMs() - t0;
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode === 200) resolve({ ms, body });
        else reject(new Error(`GET ${url}: ${res.statusCode} ${body.slice(0, 300)}`));
      });
    });
    req.once('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${url}: no answer within 10 s`)));
  });
}

export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- git

const GIT_ENV = {
  ...process.env,
  GIT_TERMINAL_PROMPT: '0',
  GIT_AUTHOR_NAME: 'Bench',
  GIT_AUTHOR_EMAIL: 'bench@localhost',
  GIT_COMMITTER_NAME: 'Bench',
  GIT_COMMITTER_EMAIL: 'bench@localhost',
};

/** Runs git asynchronously (like Factory's simple-git does: one process per command). */
export function git(cwd: string, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd, env: GIT_ENV, encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`git ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** A bare origin at <base>/<owner>/<name>.git with one commit on main (seed clone removed). */
export async function makeOrigin(base: string, owner = 'acme', name = 'web'): Promise<string> {
  const bare = path.join(base, owner, `${name}.git`);
  mkdirSync(bare, { recursive: true });
  await git(bare, 'init', '--bare', '--quiet', '-b', 'main');
  const seed = mkdtempSync(path.join(tmpdir(), 'factory-bench-seed-'));
  try {
    await git(seed, 'init', '--quiet', '-b', 'main');
    writeFileSync(path.join(seed, 'README.md'), `# ${name}\n`);
    await git(seed, 'add', '.');
    await git(seed, 'commit', '--quiet', '-m', 'initial');
    await git(seed, 'push', '--quiet', bare, 'main');
  } finally {
    rmSync(seed, { recursive: true, force: true });
  }
  return bare;
}

/** A bare clone with origin/* remote-tracking refs, the same layout as Factory's clone cache. */
export async function bareClone(origin: string, dest: string): Promise<void> {
  await git(path.dirname(dest), 'clone', '--bare', '--quiet', origin, dest);
  await git(dest, 'fetch', '--quiet', '--prune', 'origin', '+refs/heads/*:refs/remotes/origin/*');
}

// ---------------------------------------------------------------- the fake agent

export interface FakeRun {
  child: ChildProcess;
  /** performance.now() of the first stdout line. */
  firstLine: Promise<number>;
  /** Resolves with the exit code once the process has exited and stdout has ended. */
  done: Promise<number | null>;
  stdout(): string;
}

/**
 * Spawns the fake claude exactly as Factory does (the executable itself, Factory's argv shape, an
 * explicit env). `keep` collects stdout (a script that wants the result); otherwise it is discarded.
 */
export function spawnFake(prompt: string, opts: { cwd: string; env?: Record<string, string>; keep?: boolean }): FakeRun {
  const child = spawn(FAKE_CLAUDE_PATH, ['-p', prompt, '--output-format', 'stream-json', '--verbose'], {
    cwd: opts.cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', TMPDIR: tmpdir(), ...opts.env },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const chunks: Buffer[] = [];
  const firstLine = new Promise<number>((resolve, reject) => {
    const onData = (c: Buffer) => {
      if (c.includes(10)) {
        child.stdout!.off('data', onData);
        resolve(nowMs());
      }
    };
    child.stdout!.on('data', onData);
    child.once('error', reject);
    child.once('exit', () => reject(new Error('fake agent exited before printing a line')));
  });
  firstLine.catch(() => undefined);
  if (opts.keep) child.stdout!.on('data', (c: Buffer) => chunks.push(c));
  else child.stdout!.resume();
  const done = new Promise<number | null>((resolve, reject) => {
    let code: number | null = null;
    let n = 0;
    const finish = () => {
      if (++n === 2) resolve(code);
    };
    child.once('error', reject);
    child.once('exit', (c) => {
      code = c;
      finish();
    });
    child.stdout!.once('close', finish);
  });
  return { child, firstLine, done, stdout: () => Buffer.concat(chunks).toString('utf8') };
}

// ---------------------------------------------------------------- Factory on loopback fakes

export interface BenchFactory {
  env: TestEnv;
  github: FakeGitHub;
  dir: string;
  origins: string;
  claudeLog: string;
  /** performance.now() at which task `id` reached one of `statuses` (via the in-process event bus). */
  statusAt(id: number, statuses: string[], timeoutMs?: number): Promise<{ at: number; status: string }>;
  createTask(description: string, title?: string): Promise<number>;
  close(): Promise<void>;
}

/**
 * Factory built exactly like the tests build it (createTestEnv → createServices + wireFactory +
 * buildApp), with the shipped config.yml, a temp data dir, a local bare origin as clone base, the
 * fake GitHub on 127.0.0.1 and the fake claude as agent command. The queue poll interval is the
 * shipped default (1000 ms); task creation wakes the scheduler directly, as in production.
 */
export async function startFactory(opts: { start?: boolean; overrides?: Record<string, unknown> } = {}): Promise<BenchFactory> {
  const dir = tempDir();
  const origins = path.join(dir, 'origins');
  await makeOrigin(origins);
  const github = new FakeGitHub({ validToken: GITHUB_TOKEN });
  const apiUrl = await github.start();
  const claudeLog = path.join(dir, 'claude-log.jsonl');
  const env = await createTestEnv({
    dir,
    start: opts.start,
    env: { GITHUB_TOKEN },
    overrides: {
      queue: { poll_interval_ms: 1000 },
      github: { api_url: apiUrl, clone_base: origins },
      agent: {
        command: FAKE_CLAUDE_PATH,
        kill_grace_seconds: 1,
        sandbox: 'off',
        env: { FAKE_CLAUDE_LOG: claudeLog, FAKE_CLAUDE_STATE_DIR: path.join(dir, 'claude-state') },
      },
      default_org: 'acme',
      ...opts.overrides,
    },
  });
  const seen = new Map<number, Array<{ at: number; status: string }>>();
  const waiters = new Set<() => void>();
  env.services.bus.on('task.status', ({ task }) => {
    const list = seen.get(task.id) ?? [];
    list.push({ at: nowMs(), status: task.status });
    seen.set(task.id, list);
    for (const w of [...waiters]) w();
  });
  return {
    env,
    github,
    dir,
    origins,
    claudeLog,
    statusAt(id, statuses, timeoutMs = 60_000) {
      return withTimeout(
        new Promise((resolve) => {
          const check = () => {
            const hit = seen.get(id)?.find((e) => statuses.includes(e.status));
            if (hit) {
              waiters.delete(check);
              resolve(hit);
            }
          };
          waiters.add(check);
          check();
        }),
        timeoutMs,
        `task ${id} to reach ${statuses.join('|')}`,
      );
    },
    async createTask(description, title = 'bench task') {
      const res = await env.app.inject({
        method: 'POST',
        url: '/api/tasks?auto_run=true',
        payload: { repo: 'acme/web', title, description },
      });
      if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`);
      return (res.json() as { id: number }).id;
    },
    async close() {
      await env.close();
      await github.stop();
      removeTemp(dir);
    },
  };
}

// ---------------------------------------------------------------- entry points

export function isMain(metaUrl: string): boolean {
  return Boolean(process.argv[1]) && path.resolve(process.argv[1]!) === fileURLToPath(metaUrl);
}

/** For `npx tsx bench/<name>.ts`: run, print the table, exit (never hang on a stray handle). */
export function runStandalone(run: () => Promise<Row[]>): void {
  run().then(
    (rows) => {
      console.log(formatTable(rows));
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

export function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}
