// No agent process survives its task or Factory: tools that leave the agent's process group (own
// session, double fork) end with the run on cancel, watchdog, a crashed CLI, and after kill -9 of Factory.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findRunProcesses, RUN_MARK_VAR, signalProcesses } from '../src/agents/containment.js';
import { runAgent, type RunResult } from '../src/agents/runner.js';
import { GITHUB_TOKEN, processGone } from './agent-harness.js';
import { FakeGitHub } from './fakes/http/index.js';
import { claudeArgs, FAKE_CLAUDE_PATH, readFakeClaudeLog } from './fakes/claude-helpers.js';
import { tempDir, waitFor } from './helpers.js';
import { processConfig, startFactory } from './process-harness.js';

const strays: number[] = [];
afterEach(() => {
  for (const pid of strays.splice(0))
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
});

function pidsIn(file: string): number[] {
  if (!existsSync(file)) return [];
  const pids = readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
  for (const p of pids) if (!strays.includes(p)) strays.push(p);
  return pids;
}

async function waitForEscapees(file: string, n: number): Promise<number[]> {
  const pids = await waitFor(() => (pidsIn(file).length >= n ? pidsIn(file) : undefined), { what: `${n} escaped pids in ${file}` });
  for (const p of pids) expect(processGone(p), `escapee ${p} runs`).toBe(false);
  return pids;
}

function startEscaping(scenario: string, opts: { idleMs?: number; signal?: AbortSignal; onStart?: (pid: number) => void } = {}) {
  const dir = tempDir();
  const pidFile = path.join(dir, 'pids');
  const run = runAgent({
    command: FAKE_CLAUDE_PATH,
    args: claudeArgs(`[fake:${scenario}]`),
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', FAKE_CLAUDE_PIDFILE: pidFile, FAKE_CLAUDE_STATE_DIR: dir },
    totalTimeoutMs: 60_000,
    idleTimeoutMs: opts.idleMs ?? 60_000,
    killGraceMs: 500,
    signal: opts.signal,
    onStart: opts.onStart,
  });
  return { pidFile, run };
}

async function expectAllGone(pids: number[], result: RunResult): Promise<void> {
  await waitFor(() => pids.every(processGone), { timeoutMs: 5000, what: `escaped processes ${pids.join(',')} gone` });
  if (result.pid) expect(processGone(result.pid)).toBe(true);
}

describe('agent containment', () => {
  it('a cancel ends tools in their own session and double-forked ones', async () => {
    const controller = new AbortController();
    const { pidFile, run } = startEscaping('escape how=both', { signal: controller.signal });
    const pids = await waitForEscapees(pidFile, 2);
    controller.abort('cancel');
    const result = await run;
    expect(result.outcome).toBe('aborted');
    await expectAllGone(pids, result);
  });

  it('the idle watchdog ends them too', async () => {
    const { pidFile, run } = startEscaping('escape how=both', { idleMs: 1500 });
    const pids = await waitForEscapees(pidFile, 2);
    const result = await run;
    expect(result.outcome).toBe('idle_timeout');
    await expectAllGone(pids, result);
  });

  it('a CLI killed with SIGKILL leaves nothing behind', async () => {
    let cli = 0;
    const { pidFile, run } = startEscaping('escape how=both', {
      onStart: (pid) => {
        cli = pid;
      },
    });
    const pids = await waitForEscapees(pidFile, 2);
    process.kill(cli, 'SIGKILL');
    const result = await run;
    expect(result.outcome).toBe('crashed');
    expect(result.leftoversKilled).toBe(2);
    await expectAllGone(pids, result);
  });

  it('a CLI that exits on its own leaves nothing behind', async () => {
    const { pidFile, run } = startEscaping('escape how=both exit=yes');
    const result = await run;
    const pids = pidsIn(pidFile);
    expect(pids).toHaveLength(2);
    expect(result.leftoversKilled).toBe(2);
    await expectAllGone(pids, result);
  });

  it('finds processes by their whole mark and never signals a pid that now belongs to another process', async () => {
    const mark = `test-${process.pid}-${Date.now()}`;
    const other = spawn('sleep', ['30'], { env: { ...process.env, [RUN_MARK_VAR]: `${mark}x` }, stdio: 'ignore' });
    const ours = spawn('sleep', ['30'], { env: { ...process.env, [RUN_MARK_VAR]: mark }, stdio: 'ignore' });
    strays.push(other.pid!, ours.pid!);
    const found = await waitFor(
      async () => {
        const procs = await findRunProcesses(mark, null);
        return procs.length ? procs : undefined;
      },
      { what: 'the marked process' },
    );
    expect(found.map((p) => p.pid)).toEqual([ours.pid]);
    // Same pid, other start time: as if the pid had been reused since it was recorded.
    expect(await signalProcesses([{ pid: ours.pid!, start: '1' }], 'SIGKILL')).toBe(0);
    expect(processGone(ours.pid!)).toBe(false);
    expect(await signalProcesses(found, 'SIGKILL')).toBe(1);
    await waitFor(() => processGone(ours.pid!), { what: 'marked process killed' });
    expect(processGone(other.pid!)).toBe(false);
  });
});

describe('after kill -9 of Factory', () => {
  it("the next start ends the old run's escaped tools before the task runs again, and the task finishes once", async () => {
    const dir = tempDir();
    const pidFile = path.join(dir, 'pids');
    const log = path.join(dir, 'claude.jsonl');
    const env = { FAKE_CLAUDE_PIDFILE: pidFile, FAKE_CLAUDE_LOG: log, FAKE_CLAUDE_STATE_DIR: path.join(dir, 'state') };
    const github = new FakeGitHub({ validToken: GITHUB_TOKEN });
    const config = processConfig(dir, {
      memory: { enabled: false },
      log_level: 'warn',
      agent: { command: FAKE_CLAUDE_PATH, kill_grace_seconds: 1, sandbox: 'off', env },
    });
    (config.github as Record<string, unknown>).api_url = await github.start();
    const first = await startFactory(dir, config, { GITHUB_TOKEN });
    const created = await first.api('POST', '/api/tasks?auto_run=true', {
      title: 'Escaping job',
      description: '[fake:escape how=both times=1]',
      repo: 'acme/web',
    });
    const pids = await waitForEscapees(pidFile, 2);
    first.child.kill('SIGKILL');
    await first.exited;
    for (const p of pids) expect(processGone(p), 'escapee outlived the killed server').toBe(false);
    const second = await startFactory(dir, config, { GITHUB_TOKEN });
    try {
      const done = await waitFor(
        async () => {
          const t = (await second.api('GET', `/api/tasks/${created.json.id}`)).json;
          return ['in_review', 'failed'].includes(t.status) ? t : undefined;
        },
        { timeoutMs: 30_000, what: 'task finished after restart' },
      ).catch((err) => {
        throw new Error(`${err.message}\n${second.output()}`);
      });
      expect(done).toMatchObject({ status: 'in_review', error: '', attempts: 2 });
      expect(github.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/pulls'))).toHaveLength(1);
      for (const p of pids) expect(processGone(p), `old escapee ${p} still runs`).toBe(true);
      // The escapees at least (a shell still between them may be counted too, depending on timing).
      const killed = /"processes":(\d+),"msg":"killed an agent left running by a previous Factory process"/.exec(second.output());
      expect(killed, 'the boot-time reap was logged').not.toBeNull();
      expect(Number(killed![1])).toBeGreaterThanOrEqual(2);
      const runs = readFakeClaudeLog(log).filter((l) => l.env.FACTORY_TASK_ID === String(created.json.id));
      expect(runs).toHaveLength(2); // the killed one and the one that finished
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
      await github.stop();
    }
  });
});
