// Agents in the bubblewrap sandbox: what they may read, write and reach, and that cancel and the
// watchdog still end everything inside. Needs bubblewrap and socat (`.ci/run` installs them).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentSandbox, probeSandbox, sandboxApiTarget, type SandboxedRun } from '../src/agents/sandbox/index.js';
import { runAgent } from '../src/agents/runner.js';
import { loadConfig, type Config } from '../src/config.js';
import { Workspace } from '../src/git/workspace.js';
import { parseRepoSpec } from '../src/git/repo-spec.js';
import { makeOrigin } from './agent-harness.js';
import { waitFor } from './helpers.js';

const PROBE = path.resolve(import.meta.dirname, 'fakes/sandbox-probe.mjs');
const usable = (await probeSandbox()) === null;

function listen(handler: (path: string) => string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => res.end(handler(req.url ?? '')));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })));
}

/** Host processes whose command line holds `marker` (processes inside the sandbox included). */
function processesWith(marker: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(marker);
      } catch {
        return false;
      }
    })
    .map(Number);
}

// Skipped only outside CI (.ci/run sets FACTORY_CI_SANDBOX and installs the packages).
describe.skipIf(!usable && process.env.FACTORY_CI_SANDBOX !== '1')('agent sandbox (bubblewrap)', () => {
  let root: string;
  let config: Config;
  let sandbox: AgentSandbox;
  let wt1: string;
  let wt2: string;
  let cache: string;
  let allowed: { server: Server; port: number };
  let offList: { server: Server; port: number };
  let api: { server: Server; port: number };

  beforeAll(async () => {
    // Not under /tmp: the sandbox's own /tmp is private, which would hide the test's files anyway.
    root = mkdtempSync('/var/tmp/factory-sbx-');
    writeFileSync(path.join(root, '.env'), 'GITHUB_TOKEN=ghp_fromdotenv_should_never_be_read\n');
    writeFileSync(path.join(root, 'config.yml'), 'agent:\n  sandbox: on\n');
    config = loadConfig({
      configPath: path.join(root, 'config.yml'),
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: path.join(root, 'home') },
      dotenv: false,
    });
    mkdirSync(path.join(root, 'home', '.ssh'), { recursive: true });
    writeFileSync(path.join(root, 'home', '.ssh', 'id_ed25519'), 'PRIVATE KEY OF THE OPERATOR\n');
    mkdirSync(config.data_dir, { recursive: true });
    writeFileSync(path.join(config.data_dir, 'factory.db'), 'database bytes');
    const origins = path.join(root, 'origins');
    makeOrigin(origins, 'acme', 'web');
    const spec = parseRepoSpec('acme/web', { repos: {}, defaultOrg: '', cloneBase: origins });
    const ws = new Workspace({
      reposDir: config.repos_dir,
      worktreesDir: config.worktrees_dir,
      githubToken: '',
      authorName: 'F',
      authorEmail: 'f@x',
      baseEnv: { PATH: process.env.PATH ?? '', HOME: root },
    });
    await ws.sync(spec);
    wt1 = (await ws.prepare(spec, 'task-1', 'factory/1', 'main')).path;
    wt2 = (await ws.prepare(spec, 'task-2', 'factory/2', 'main')).path;
    cache = ws.cachePath(spec);
    allowed = await listen(() => 'hello from an allowed host');
    offList = await listen(() => 'should never be reached');
    api = await listen(() => 'factory api');
    sandbox = new AgentSandbox({ config, logger: pino({ level: 'silent' }) });
    await sandbox.init();
  });
  afterAll(() => {
    for (const s of [allowed, offList, api]) s?.server.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** Runs a prepared sandbox command in the first worktree, as the executor would. */
  function runPrepared(run: SandboxedRun, opts: { signal?: AbortSignal; idleTimeoutMs?: number; onStart?: () => void } = {}) {
    return runAgent({
      command: run.command,
      args: run.args,
      cwd: wt1,
      env: run.env,
      totalTimeoutMs: 60_000,
      idleTimeoutMs: opts.idleTimeoutMs ?? 60_000,
      killGraceMs: 500,
      signal: opts.signal,
      onStart: opts.onStart,
    });
  }

  async function runProbe(plan: unknown[], opts: { signal?: AbortSignal; idleTimeoutMs?: number; onStart?: () => void } = {}) {
    const out = path.join(wt1, `probe-${Date.now()}-${Math.random().toString(16).slice(2)}.jsonl`);
    const refused: string[] = [];
    const run = await sandbox.prepare(process.execPath, [PROBE], {
      taskId: 1,
      worktree: wt1,
      cache,
      allow: [`127.0.0.1:${allowed.port}`],
      env: {
        PATH: process.env.PATH ?? '',
        HOME: path.join(root, 'home'),
        PROBE_PLAN: JSON.stringify(plan),
        PROBE_OUT: out,
        FACTORY_API_URL: `http://127.0.0.1:${api.port}`,
      },
      onRefused: (d) => refused.push(d),
    });
    try {
      const res = await runPrepared(run, opts);
      const lines = existsSync(out)
        ? readFileSync(out, 'utf8')
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l))
        : [];
      return { res, lines, refused };
    } finally {
      await run.dispose();
    }
  }

  it('is active, and hides Factory data, config, .env, other worktrees and home secrets', async () => {
    expect(sandbox.status()).toMatchObject({ mode: 'on', sandboxed: true });
    const { lines, res } = await runProbe([
      ['read', path.join(root, '.env')],
      ['read', path.join(config.data_dir, 'factory.db')],
      ['read', path.join(root, 'home', '.ssh', 'id_ed25519')],
      ['read', path.join(wt2, 'README.md')],
      ['write', path.join(wt2, 'INTRUDER.md')],
      ['write', path.join(cache, 'config')],
      ['write', path.join(root, 'home', 'planted')],
      ['write', path.join(wt1, 'OWN.md')],
      ['read', path.join(wt1, 'README.md')],
    ]);
    expect(res.outcome).toBe('crashed'); // the probe prints no result event; it ran to its end
    const byPath = (op: string, p: string) => lines.find((l) => l.op === op && l.path === p);
    expect(byPath('read', path.join(root, '.env'))?.content ?? '').not.toContain('ghp_');
    expect(byPath('read', path.join(config.data_dir, 'factory.db'))?.ok).toBe(false);
    expect(byPath('read', path.join(root, 'home', '.ssh', 'id_ed25519'))?.content ?? '').not.toContain('PRIVATE');
    expect(byPath('read', path.join(wt2, 'README.md'))?.ok).toBe(false);
    expect(byPath('write', path.join(wt2, 'INTRUDER.md'))?.ok).toBe(false);
    expect(byPath('write', path.join(cache, 'config'))?.ok).toBe(false);
    expect(byPath('write', path.join(root, 'home', 'planted'))?.ok).toBe(false);
    expect(byPath('write', path.join(wt1, 'OWN.md'))?.ok).toBe(true);
    expect(byPath('read', path.join(wt1, 'README.md'))?.content).toContain('# web');
    // And outside, nothing changed.
    expect(existsSync(path.join(wt2, 'INTRUDER.md'))).toBe(false);
    expect(existsSync(path.join(root, 'home', 'planted'))).toBe(false);
    expect(readFileSync(path.join(cache, 'config'), 'utf8')).not.toContain('probe');
  });

  it('still runs an agent command that lives under /tmp, behind the private /tmp', async () => {
    // Factory or the agent CLI installed under /tmp (a CI checkout, say) must stay visible inside.
    const binDir = mkdtempSync('/tmp/factory-agent-bin-');
    const agent = path.join(binDir, 'agent');
    writeFileSync(agent, '#!/bin/sh\necho "ran from $0" > "$OUT"\n', { mode: 0o755 });
    const out = path.join(wt1, 'tmp-agent.txt');
    const run = await sandbox.prepare(agent, [], {
      taskId: 1,
      worktree: wt1,
      cache,
      allow: [],
      env: { PATH: process.env.PATH ?? '', OUT: out },
    });
    try {
      const res = await runPrepared(run);
      expect(res.exitCode, res.tail.join('\n')).toBe(0);
      expect(readFileSync(out, 'utf8')).toBe(`ran from ${agent}\n`);
    } finally {
      await run.dispose();
      rmSync(binDir, { recursive: true, force: true });
    }
  });

  it('reaches allowed hosts through the proxy and Factory API through its relay, nothing else', async () => {
    const { lines, refused } = await runProbe([
      ['proxy', `http://127.0.0.1:${allowed.port}/x`],
      ['tunnel', `127.0.0.1:${allowed.port}`],
      ['proxy', `http://127.0.0.1:${offList.port}/x`],
      ['tunnel', `127.0.0.1:${offList.port}`],
      ['tunnel', 'example.com:443'],
      ['direct', '127.0.0.1', offList.port],
      ['api', '/health'],
    ]);
    const [plainOk, tunnelOk, plainNo, tunnelNo, internet, direct, apiCall] = lines;
    expect(plainOk).toMatchObject({ status: 200, body: 'hello from an allowed host' });
    expect(tunnelOk).toMatchObject({ status: 200 });
    expect(plainNo).toMatchObject({ status: 403 });
    expect(tunnelNo).toMatchObject({ status: 403 });
    expect(internet).toMatchObject({ status: 403 });
    expect(direct.result).not.toBe('connected');
    expect(apiCall).toMatchObject({ status: 200 });
    expect(refused).toEqual(expect.arrayContaining([`127.0.0.1:${offList.port}`, 'example.com:443']));
  });

  it('cancel ends everything inside, a tool that left the process group included', async () => {
    const marker = String(900_000 + Math.floor(Math.random() * 99_999));
    const ac = new AbortController();
    const pending = runProbe([['orphan', marker], ['hang']], { signal: ac.signal });
    await waitFor(() => processesWith(marker).length > 0, { what: 'the orphaned tool to start' });
    ac.abort();
    const { res } = await pending;
    expect(res.outcome).toBe('aborted');
    await waitFor(() => processesWith(marker).length === 0, { what: 'the orphan to be gone', timeoutMs: 5000 });
  });

  it('the idle watchdog ends everything inside too', async () => {
    const marker = String(800_000 + Math.floor(Math.random() * 99_999));
    const pending = runProbe([['orphan', marker], ['hang']], { idleTimeoutMs: 1500 });
    await waitFor(() => processesWith(marker).length > 0, { what: 'the orphaned tool to start' });
    const { res } = await pending;
    expect(res.outcome).toBe('idle_timeout');
    await waitFor(() => processesWith(marker).length === 0, { what: 'the orphan to be gone', timeoutMs: 5000 });
  });
});

describe('sandbox API relay target', () => {
  it("relays plain HTTP as given and an https public URL to Factory's own port", () => {
    expect(sandboxApiTarget('http://127.0.0.1:8100', 8100)).toEqual({ host: '127.0.0.1', port: 8100 });
    expect(sandboxApiTarget('https://factory.example.com', 8100)).toEqual({ host: '127.0.0.1', port: 8100 });
    expect(sandboxApiTarget('not a url', 8100)).toBeNull();
  });
});
