// The real Claude Code CLI (devDependency @anthropic-ai/claude-code, pinned) under runAgent, talking to
// a scripted fake of the Anthropic Messages API on 127.0.0.1 (fakes/anthropic-api.ts): the CLI's own
// tool loop runs, so what Factory sees and what it must clean up are what production sees.
//
// The containment tests start tool processes that leave the CLI's tree on purpose (the Bash tool runs
// in a session of its own already; the command adds a setsid and a double fork) and then cancel the
// run or SIGKILL the CLI: afterwards none of them may be alive.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runAgent, type RunSpec } from '../src/agents/runner.js';
import { FakeAnthropicApi, toolResultsOf, toolResultText } from './fakes/anthropic-api.js';

/** The CLI's native binary: the platform package's, else the wrapper's bin (its postinstall copies it there). */
function claudeBinary(): string {
  const require = createRequire(import.meta.url);
  const candidates: string[] = [];
  try {
    candidates.push(
      path.join(path.dirname(require.resolve(`@anthropic-ai/claude-code-${process.platform}-${process.arch}/package.json`)), 'claude'),
    );
  } catch {
    /* not this platform's package */
  }
  try {
    candidates.push(path.join(path.dirname(require.resolve('@anthropic-ai/claude-code/package.json')), 'bin', 'claude.exe'));
  } catch {
    /* not installed */
  }
  // The wrapper's placeholder is a small script; the real binary is well over a megabyte.
  const found = candidates.find((c) => existsSync(c) && statSync(c).size > 1_000_000);
  if (!found) throw new Error(`the Claude Code CLI binary is not installed (looked at ${candidates.join(', ') || 'nothing'}); run npm ci`);
  return found;
}

interface Proc {
  pid: number;
  start: string;
  state: string;
  ppid: number;
  sid: number;
}

function readProc(pid: number): Proc | null {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    return { pid, state: f[0]!, ppid: Number(f[1]), sid: Number(f[3]), start: f[19]! };
  } catch {
    return null;
  }
}

/** Alive: /proc/<pid> exists, is not a zombie, and is the same process (start time) as when recorded. */
function alive(p: { pid: number; start: string }): boolean {
  const now = readProc(p.pid);
  return !!now && now.state !== 'Z' && now.start === p.start;
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | null | false): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
const recorded: Proc[] = [];
afterEach(async () => {
  // A failing run must not leak sleeps: kill whatever recorded process still runs (same start time only).
  for (const p of recorded.splice(0))
    if (alive(p))
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
  for (const c of cleanups.splice(0).reverse()) await c();
});

const DUMMY_KEY = 'sk-ant-test-dummy';

/** A temp dir holding a private HOME (and CLAUDE_CONFIG_DIR, TMPDIR), a git repo to work in, and a pid dir. */
function sandbox() {
  const root = mkdtempSync(path.join(tmpdir(), 'factory-claude-real-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const home = path.join(root, 'home');
  const repo = path.join(root, 'repo');
  const pids = path.join(root, 'pids');
  const tmp = path.join(root, 'tmp');
  for (const d of [home, repo, pids, tmp]) execFileSync('mkdir', ['-p', d]);
  const git = (...a: string[]) => execFileSync('git', a, { cwd: repo, stdio: 'ignore', env: { PATH: process.env.PATH ?? '', HOME: home } });
  git('init', '-q');
  writeFileSync(path.join(repo, 'README.md'), '# test repo\n');
  git('add', 'README.md');
  git('-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-q', '-m', 'init');
  return { root, home, repo, pids, tmp };
}

async function startApi(turns: ConstructorParameters<typeof FakeAnthropicApi>[0]) {
  const api = new FakeAnthropicApi(turns);
  const base = await api.start();
  cleanups.push(() => api.stop());
  return { api, base };
}

/** runAgent's spec as Factory builds it (executor.ts: -p … --output-format stream-json --verbose --append-system-prompt … --allowedTools …). */
function cliSpec(box: ReturnType<typeof sandbox>, base: string, prompt: string, extra: Partial<RunSpec> = {}): RunSpec {
  return {
    command: claudeBinary(),
    args: [
      '-p',
      prompt,
      '--output-format',
      'stream-json',
      '--verbose',
      '--append-system-prompt',
      'You are a Factory test agent.',
      '--allowedTools',
      'Bash,Read,Edit,Write',
    ],
    cwd: box.repo,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: box.home,
      CLAUDE_CONFIG_DIR: path.join(box.home, '.claude'),
      TMPDIR: box.tmp,
      ANTHROPIC_BASE_URL: base,
      ANTHROPIC_API_KEY: DUMMY_KEY,
      // No calling home: the machine has no internet, and a test must not depend on it.
      DISABLE_AUTOUPDATER: '1',
      DISABLE_TELEMETRY: '1',
      DISABLE_ERROR_REPORTING: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    },
    totalTimeoutMs: 25_000,
    idleTimeoutMs: 25_000,
    killGraceMs: 1_000,
    ...extra,
  };
}

/**
 * A Bash command that leaves four long-lived processes, each writing its pid first:
 * shell (the Bash tool's own shell, in its own session), setsid (a new session), double (double fork,
 * reparented away from the shell) and fg (the shell's foreground child, which keeps the tool running).
 */
function escapingCommand(dir: string): string {
  const q = `'${dir}'`;
  return [
    `echo $$ > ${q}/shell.pid`,
    `setsid sh -c 'echo $$ > "$0/setsid.pid"; exec sleep 300' ${q} &`,
    `(sh -c 'echo $$ > "$0/double.pid"; exec sleep 301' ${q} &)`,
    `sh -c 'echo $$ > "$0/fg.pid"; exec sleep 302' ${q}`,
  ].join('\n');
}

const NAMES = ['shell', 'setsid', 'double', 'fg'] as const;

/** Waits for every pid file, records the processes (for afterEach) and checks they really escaped. */
async function waitForTools(dir: string, cliPid: () => number | null): Promise<Record<(typeof NAMES)[number], Proc>> {
  const procs = await until('the Bash tool to start its processes (pid files)', 20_000, () => {
    const out: Partial<Record<(typeof NAMES)[number], Proc>> = {};
    for (const n of NAMES) {
      const f = path.join(dir, `${n}.pid`);
      if (!existsSync(f)) return undefined;
      const pid = Number(readFileSync(f, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 1) return undefined; // written but not yet complete
      const p = readProc(pid);
      if (!p) throw new Error(`${n} (pid ${pid}) exited before the test could look at it`);
      out[n] = p;
    }
    return out as Record<(typeof NAMES)[number], Proc>;
  });
  recorded.push(...Object.values(procs));
  // The double-forked one is reparented once its intermediate subshell has exited.
  const double = await until('the double-forked sleep to be reparented', 5_000, () => {
    const p = readProc(procs.double.pid);
    return p && p.ppid !== procs.shell.pid ? p : undefined;
  });
  const cli = readProc(cliPid() ?? -1);
  expect(cli, 'the CLI runs while its tool runs').not.toBeNull();
  // They did leave: none is in the CLI's session, the setsid one leads its own, the fg one is the shell's child.
  for (const n of NAMES) expect(procs[n].sid, `${n} is outside the CLI's session`).not.toBe(cli!.sid);
  expect(procs.setsid.sid).toBe(procs.setsid.pid);
  expect(double.ppid).not.toBe(procs.shell.pid);
  expect(procs.fg.ppid).toBe(procs.shell.pid);
  for (const n of NAMES) expect(alive(procs[n]), `${n} runs`).toBe(true);
  return procs;
}

async function expectAllGone(procs: Record<string, Proc>): Promise<void> {
  const survivors = () => Object.entries(procs).filter(([, p]) => alive(p));
  try {
    await until('every process the agent started to be gone', 5_000, () => survivors().length === 0);
  } catch {
    const left = survivors().map(
      ([n, p]) => `${n} (pid ${p.pid}, ${readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()})`,
    );
    expect(left, 'processes the agent started still run 5 s after runAgent returned').toEqual([]);
  }
}

describe.skipIf(process.platform !== 'linux')('real Claude Code CLI against the fake Anthropic API', () => {
  it('answers a scripted text turn: outcome success, the result event parsed', async () => {
    const box = sandbox();
    const { api, base } = await startApi({ script: [{ text: 'Hello from the fake model.' }] });
    const r = await runAgent(cliSpec(box, base, 'Say hello.'));
    expect(r.error).toBe('');
    expect(r.outcome).toBe('success');
    expect(r.result?.isError).toBe(false);
    expect(r.result?.subtype).toBe('success');
    expect(r.result?.text).toBe('Hello from the fake model.');
    expect(r.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const main = api.mainRequests();
    expect(main).toHaveLength(1);
    expect(main[0]!.stream).toBe(true);
    expect(main[0]!.headers['x-api-key']).toBe(DUMMY_KEY);
    expect(JSON.stringify((main[0]!.body as { messages: unknown }).messages)).toContain('Say hello.');
    expect(main[0]!.events).toEqual([
      'message_start',
      'ping',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(api.script).toHaveLength(0);
  });

  it('runs a scripted Bash tool call in the cwd and sends its output back to the API', async () => {
    const box = sandbox();
    const { api, base } = await startApi({
      script: [
        {
          toolUse: {
            name: 'Bash',
            input: { command: 'echo tool-ran > marker.txt && git rev-parse --is-inside-work-tree', description: 'Write a marker' },
          },
        },
        { text: 'Wrote the marker.' },
      ],
    });
    const r = await runAgent(cliSpec(box, base, 'Write the marker.'));
    expect(r.outcome).toBe('success');
    expect(r.result?.text).toBe('Wrote the marker.');
    expect(readFileSync(path.join(box.repo, 'marker.txt'), 'utf8')).toBe('tool-ran\n');
    const main = api.mainRequests();
    expect(main).toHaveLength(2);
    const results = toolResultsOf(main[1]!.body);
    expect(results).toHaveLength(1);
    expect(results[0]!.tool_use_id).toBe(main[0]!.turn?.toolUse?.id);
    expect(results[0]!.is_error).toBe(false);
    expect(toolResultText(results[0]!).trim()).toBe('true');
    expect(r.tail.some((l) => l.includes('"tool_use"') && l.includes('marker.txt'))).toBe(true);
  });

  it('cancel during a Bash tool call: nothing the tool started survives, setsid and double fork included', async () => {
    const box = sandbox();
    const { api, base } = await startApi({
      script: [
        { toolUse: { name: 'Bash', input: { command: escapingCommand(box.pids), description: 'Start long-lived helpers' } } },
        { text: 'not reached' },
      ],
    });
    const ac = new AbortController();
    let cliPid: number | null = null;
    const run = runAgent(
      cliSpec(box, base, 'Start the helpers.', {
        signal: ac.signal,
        onStart: (pid) => {
          cliPid = pid;
        },
      }),
    );
    let procs: Record<string, Proc>;
    try {
      procs = await waitForTools(box.pids, () => cliPid);
    } finally {
      if (!ac.signal.aborted) ac.abort('test cancel');
    }
    const r = await run;
    expect(r.outcome).toBe('aborted');
    expect(api.mainRequests()).toHaveLength(1); // the tool was still running: no second turn
    await expectAllGone(procs);
  });

  it('SIGKILL of the CLI during a Bash tool call: nothing the tool started survives', async () => {
    const box = sandbox();
    const { api, base } = await startApi({
      script: [
        { toolUse: { name: 'Bash', input: { command: escapingCommand(box.pids), description: 'Start long-lived helpers' } } },
        { text: 'not reached' },
      ],
    });
    const ac = new AbortController();
    let cliPid: number | null = null;
    const run = runAgent(
      cliSpec(box, base, 'Start the helpers.', {
        signal: ac.signal,
        onStart: (pid) => {
          cliPid = pid;
        },
      }),
    );
    let procs: Record<string, Proc>;
    try {
      procs = await waitForTools(box.pids, () => cliPid);
      process.kill(cliPid!, 'SIGKILL');
    } catch (err) {
      ac.abort('test setup failed');
      throw err;
    } finally {
      // run is awaited below on success; on failure make sure it settles before afterEach cleans up.
      if (ac.signal.aborted) await run;
    }
    const r = await run;
    expect(r.signal).toBe('SIGKILL');
    expect(r.outcome).toBe('crashed');
    expect(api.mainRequests()).toHaveLength(1);
    await expectAllGone(procs);
  });
});
