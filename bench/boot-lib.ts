// Booting the production bundle (the build of src/main.ts that npm start runs) as a child process,
// for the benchmarks that measure Factory as it is deployed (boot.ts, growth.ts).
// The child gets a minimal environment (no tokens from this shell) and a copy of config.yml in a temp
// dir (prompts symlinked), so no .env can point it anywhere but 127.0.0.1.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, symlinkSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, exited, freePort, nowMs, sleep } from './lib.js';

const BOOT_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

/** Puts the shipped config.yml (and the prompts it refers to) into `root`, the child's config dir. */
export function prepareBootRoot(root: string): void {
  copyFileSync(path.join(ROOT, 'config.yml'), path.join(root, 'config.yml'));
  symlinkSync(path.join(ROOT, 'prompts'), path.join(root, 'prompts'));
}

/**
 * Builds the bundle into `outdir` and returns the node arguments that start it. `outdir` must be
 * inside the package (e.g. dist/…): the bundle finds static/ and the migrations from the package root.
 */
export async function buildBundle(outdir: string): Promise<string[]> {
  const { bundle } = (await import(path.join(ROOT, 'scripts', 'bundle.mjs'))) as { bundle: (dir: string) => Promise<string> };
  return [await bundle(outdir)];
}

export function healthOk(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/health', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

export interface BootedFactory {
  child: ChildProcess;
  port: number;
  /** From spawn to the first GET /health that answered 200. */
  bootMs: number;
  /** Started through a launcher (npm) rather than node itself. */
  launcher: boolean;
  /** The last few KiB of the child's stderr, for error messages. */
  stderr(): string;
}

/** Signals the child's whole process group (it leads one); a group already gone is fine. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    /* gone */
  }
}

/** Polls until no process of the child's group is left, or the deadline (nowMs) passed. */
async function groupGone(child: ChildProcess, deadline: number): Promise<void> {
  while (nowMs() < deadline) {
    try {
      process.kill(-child.pid!, 0);
    } catch {
      return;
    }
    await sleep(5);
  }
}

async function killIfRunning(child: ChildProcess): Promise<void> {
  const running = child.exitCode === null && child.signalCode === null;
  signalGroup(child, 'SIGKILL'); // also what npm started, should npm have gone first
  if (running) await exited(child);
}

/**
 * Starts `node <nodeArgs>` (or `command` with those arguments, e.g. npm) with `root`'s config and
 * `dataDir` on a free loopback port, in a process group of its own; resolves once healthy.
 */
export async function bootFactory(root: string, dataDir: string, nodeArgs: string[], command = process.execPath): Promise<BootedFactory> {
  const port = await freePort();
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    TMPDIR: tmpdir(),
    FACTORY_CONFIG: path.join(root, 'config.yml'),
    FACTORY_DATA_DIR: dataDir,
    FACTORY_PORT: String(port),
    FACTORY_HOST: '127.0.0.1',
    FACTORY_LOG_LEVEL: 'warn',
  };
  const t0 = nowMs();
  // detached: npm runs Factory as a child of its own; the whole group is signalled (see stopFactory).
  const child = spawn(command, nodeArgs, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-4000);
  });
  try {
    while (nowMs() - t0 < BOOT_TIMEOUT_MS) {
      if (child.exitCode !== null) throw new Error(`factory exited ${child.exitCode} during boot: ${stderr}`);
      if (await healthOk(port)) return { child, port, bootMs: nowMs() - t0, launcher: command !== process.execPath, stderr: () => stderr };
      await sleep(10);
    }
    throw new Error(`factory not healthy within ${BOOT_TIMEOUT_MS} ms: ${stderr}`);
  } catch (err) {
    await killIfRunning(child);
    throw err;
  }
}

/** SIGTERM, then the time until the process has exited; throws unless it exited with code 0. */
export async function stopFactory(f: BootedFactory): Promise<number> {
  const t0 = nowMs();
  try {
    signalGroup(f.child, 'SIGTERM');
    await Promise.race([exited(f.child), sleep(STOP_TIMEOUT_MS)]);
    if (f.launcher) await groupGone(f.child, t0 + STOP_TIMEOUT_MS); // npm may end before the Factory it started
    const exitMs = nowMs() - t0;
    // A launcher (npm) passes the signal on and then ends by it itself; node on Factory must exit 0.
    const clean = f.child.exitCode === 0 || (f.launcher && f.child.signalCode === 'SIGTERM');
    if (!clean) throw new Error(`factory exit after SIGTERM: ${f.child.exitCode ?? f.child.signalCode} ${f.stderr()}`);
    return exitMs;
  } finally {
    await killIfRunning(f.child);
  }
}
