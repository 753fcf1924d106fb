// What every fault scenario needs: a real Factory process on a local origin with the fake claude and a
// fake GitHub, a /health prober in a process of its own, a task that must hit the activity watchdog,
// and read-only looks into Factory's SQLite file to count runs and deliveries.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { GITHUB_TOKEN } from '../agent-harness.js';
import { FAKE_CLAUDE_PATH, readFakeClaudeLog } from '../fakes/claude-helpers.js';
import { FakeGitHub, type FakeServer } from '../fakes/http/index.js';
import { processConfig, startFactory, type FactoryProcess } from '../process-harness.js';
import { tempDir, waitFor } from '../helpers.js';

/** The activity watchdog of every scenario: a silent agent is stopped after this long. */
export const IDLE_TIMEOUT_MS = 3000;
/** How late the watchdog may be, for the process start, the SIGTERM grace and a busy CI machine. */
const WATCHDOG_SLACK_MS = 4000;

export interface FaultFactory extends FactoryProcess {
  dir: string;
  github: FakeGitHub;
  claudeLog: string;
  /** Stops Factory (SIGTERM, then waits) and the fake GitHub. */
  stop(): Promise<void>;
}

/** Starts Factory with `extra` config on top of the scenario defaults; memory is off unless `extra` turns it on. */
export async function startFaultFactory(
  extra: Record<string, unknown> = {},
  env: Record<string, string> = {},
  github = new FakeGitHub({ validToken: GITHUB_TOKEN }),
): Promise<FaultFactory> {
  const dir = tempDir();
  const apiUrl = github.url || (await github.start());
  const claudeLog = path.join(dir, 'claude.jsonl');
  const { github: githubExtra, ...rest } = extra as { github?: Record<string, unknown> };
  const config = processConfig(dir, {
    github: { clone_base: path.join(dir, 'origins'), api_url: apiUrl, ...githubExtra },
    agent: {
      command: FAKE_CLAUDE_PATH,
      kill_grace_seconds: 1,
      sandbox: 'off',
      env: { FAKE_CLAUDE_LOG: claudeLog, FAKE_CLAUDE_STATE_DIR: path.join(dir, 'state') },
    },
    agent_activity_timeout_minutes: IDLE_TIMEOUT_MS / 60_000,
    max_concurrent_agents: 4,
    memory: { enabled: false },
    log_level: 'info',
    shutdown: { grace_seconds: 2 },
    ...rest,
  });
  const factory = await startFactory(dir, config, { GITHUB_TOKEN, ...env });
  return {
    ...factory,
    dir,
    github,
    claudeLog,
    async stop() {
      if (factory.child.exitCode === null && factory.child.signalCode === null) factory.child.kill('SIGTERM');
      await factory.exited;
      await github.stop();
    },
  };
}

interface LatencySummary {
  count: number;
  failures: number;
  first_failures: string[];
  p50: number;
  p99: number;
  max: number;
}
/** Factory's /health latencies, and those of a bare Node server on the same machine (the control). */
export interface ProbeSummary extends LatencySummary {
  control: LatencySummary;
}

/** A /health prober in its own process (25 ms apart); stop() returns what it saw. */
export async function startHealthProbe(factoryUrl: string): Promise<{ stop(): Promise<ProbeSummary> }> {
  const child: ChildProcess = spawn(process.execPath, [path.join(import.meta.dirname, 'health-probe.mjs'), `${factoryUrl}/health`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  // A test that fails before stop() must not leave the prober running after the test process.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  await waitFor(() => out.startsWith('ready'), { what: 'the health probe to start' });
  let stopped: Promise<ProbeSummary> | null = null;
  return {
    // Idempotent: a test's cleanup may call it again after the test did.
    stop() {
      stopped ??= (async () => {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
        process.off('exit', killOnExit);
        return JSON.parse(out.split('\n')[1]!) as ProbeSummary;
      })();
      return stopped;
    },
  };
}

/**
 * The Done-means bar: every probe answered, p99 under 100 ms. The machine's own scheduling delay (the
 * control's p99) is allowed on top, so a busy CI host does not fail a Factory that never blocked; a
 * frozen event loop shows as seconds, far past either.
 */
export function expectResponsive(s: ProbeSummary): void {
  expect(s.count, 'the probe ran through the fault').toBeGreaterThan(40);
  expect(s.failures, `probes unanswered: ${s.first_failures.join(', ')}`).toBe(0);
  expect(s.control.failures, 'the control server answered').toBe(0);
  const bar = 100 + s.control.p99;
  expect(s.p99, `/health p99 ${s.p99} ms (max ${s.max} ms), control p99 ${s.control.p99} ms`).toBeLessThan(bar);
}

export type TaskJson = { id: number; status: string; error: string; attempts: number; pr_url: string; branch_name: string };

export async function createTask(f: FactoryProcess, title: string, description: string): Promise<TaskJson> {
  const r = await f.api('POST', '/api/tasks?auto_run=true', { title, description, repo: 'acme/web' });
  expect(r.status, JSON.stringify(r.json)).toBe(201);
  return r.json as TaskJson;
}

export async function waitTaskStatus(f: FactoryProcess, id: number, statuses: string[], timeoutMs = 30_000): Promise<TaskJson> {
  return waitFor(
    async () => {
      const t = (await f.api('GET', `/api/tasks/${id}`)).json as TaskJson;
      return statuses.includes(t.status) ? t : undefined;
    },
    { what: `task ${id} to be ${statuses.join('|')}`, timeoutMs },
  );
}

/** Read-only look at Factory's database (WAL mode lets us read while it writes). */
export function readDb<T>(f: FaultFactory, read: (db: Database.Database) => T): T {
  const db = new Database(path.join(f.dir, 'data', 'factory.db'), { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

interface RunRow {
  started_at: string;
  ended_at: string | null;
  outcome: string;
  error: string;
}

/**
 * Checks the silent task's run was stopped by the activity watchdog, and on time: the fault must not
 * have frozen the timers. Returns how late it fired.
 */
export async function expectWatchdogFired(f: FaultFactory, taskId: number): Promise<number> {
  // Through the API: the same on either database engine.
  const run = await waitFor(
    async () => ((await f.api('GET', `/api/tasks/${taskId}`)).json as { runs?: RunRow[] }).runs?.find((r) => r.ended_at !== null),
    { what: `the watchdog to end task ${taskId}'s run`, timeoutMs: IDLE_TIMEOUT_MS + 20_000 },
  );
  expect(run.error).toMatch(/no output for/);
  const ranMs = Date.parse(run.ended_at!) - Date.parse(run.started_at);
  expect(ranMs).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS - 100);
  expect(ranMs, `the watchdog fired ${ranMs - IDLE_TIMEOUT_MS} ms late`).toBeLessThan(IDLE_TIMEOUT_MS + WATCHDOG_SLACK_MS);
  return ranMs - IDLE_TIMEOUT_MS;
}

/** Agent invocations per task id, from the fake claude's log. */
export function runsOf(f: FaultFactory, taskId: number): number {
  return readFakeClaudeLog(f.claudeLog).filter((r) => r.env.FACTORY_TASK_ID === String(taskId)).length;
}

/** Outbox rows of a channel in the order Factory must deliver them (per order key: by id). */
export function outboxRows(
  f: FaultFactory,
  channel: string,
): Array<{ id: number; order_key: string; payload: string; delivered_at: string | null; attempts: number }> {
  return readDb(
    f,
    (db) =>
      db.prepare('SELECT id, order_key, payload, delivered_at, attempts FROM outbox WHERE channel = ? ORDER BY id').all(channel) as never,
  );
}

/**
 * The standard work of a scenario, started while the fault is on: one task that succeeds with a PR and
 * one silent task the activity watchdog must stop.
 */
export async function startStandardTasks(f: FactoryProcess): Promise<{ ok: TaskJson; silent: TaskJson }> {
  const ok = await createTask(f, 'Succeeds during the fault', '[fake:success]');
  const silent = await createTask(f, 'Goes silent during the fault', '[fake:hang]');
  return { ok, silent };
}

/**
 * Task ends: the good one in review (with its PR, unless `prMayWait`: GitHub itself is the fault, so
 * the PR may be deferred), the silent one stopped by the watchdog; one agent run for the good one.
 */
export async function expectStandardOutcome(
  f: FaultFactory,
  tasks: { ok: TaskJson; silent: TaskJson },
  opts: { prMayWait?: boolean } = {},
): Promise<void> {
  const ok = await waitTaskStatus(f, tasks.ok.id, ['in_review', 'failed'], 40_000);
  expect(ok.status, ok.error).toBe('in_review');
  if (!opts.prMayWait) {
    expect(ok.error).toBe('');
    expect(ok.pr_url).toMatch(/\/pull\/\d+$/);
  }
  expect(runsOf(f, tasks.ok.id)).toBe(1);
  await expectWatchdogFired(f, tasks.silent.id);
}

/** One outside fault: switched on before the tasks start, off once Factory has met it. */
export interface FaultSwitch {
  on(): Promise<void> | void;
  off(): Promise<void> | void;
  /** True once Factory has run into the fault (so the scenario is not vacuous). */
  hit(f: FaultFactory): boolean;
}

/**
 * The shape every scenario shares: probe /health from its own process, switch the fault on, run the
 * standard tasks to their ends, check deliveries waited, switch it off, then `delivered` checks that
 * every queued delivery arrived once and in order. One PR in all, the probe answered throughout.
 */
export async function runFaultScenario(
  f: FaultFactory,
  fault: FaultSwitch,
  channel: string,
  delivered: (f: FaultFactory, tasks: { ok: TaskJson; silent: TaskJson }) => Promise<void>,
  opts: { prMayWait?: boolean } = {},
): Promise<void> {
  const probe = await startHealthProbe(f.url);
  await fault.on();
  const tasks = await startStandardTasks(f);
  await expectStandardOutcome(f, tasks, opts);
  // Its retries (if any) are over: no new deliveries are queued after the check below.
  await waitTaskStatus(f, tasks.silent.id, ['failed', 'cancelled'], 60_000);
  await waitFor(() => fault.hit(f), { what: 'Factory to meet the fault' });
  expect(
    outboxRows(f, channel).some((r) => !r.delivered_at),
    `${channel} deliveries wait while the service misbehaves`,
  ).toBe(true);
  await fault.off();
  await delivered(f, tasks);
  expectResponsive(await probe.stop());
  // One PR in all, on the fake's side (an answer lost after the PR was made still made it).
  expect(f.github.pulls.size).toBe(1);
  expect(runsOf(f, tasks.ok.id)).toBe(1);
}

/** Waits until every row of `channel` is delivered (none dead) and returns them in queue order. */
export async function allDelivered(f: FaultFactory, channel: string): Promise<ReturnType<typeof outboxRows>> {
  return waitFor(
    () => {
      const all = outboxRows(f, channel);
      return all.length > 0 && all.every((r) => r.delivered_at) ? all : undefined;
    },
    { what: `every ${channel} delivery made`, timeoutMs: 30_000 },
  );
}

/** The service is gone (its port refuses connections) until off() brings it back on the same port. */
export function connectionRefused(server: FakeServer, channel: string): FaultSwitch {
  let port = 0;
  let down = false;
  return {
    on: async () => {
      port = Number(new URL(server.url).port);
      await server.stop();
      down = true;
    },
    off: async () => {
      await server.start(port);
      down = false;
    },
    hit: (f) => down && outboxRows(f, channel).some((r) => r.attempts > 0 && !r.delivered_at),
  };
}
