// Scale-out over PostgreSQL: one API process and two worker processes on loopback, sharing one
// queue. Real child processes, a real PostgreSQL (FACTORY_TEST_PG_URL, started by .ci/run), the fake
// claude and a fake GitHub.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GITHUB_TOKEN, gitOut, makeOrigin, processGone } from './agent-harness.js';
import { FAKE_CLAUDE_PATH, readFakeClaudeLog, readJsonLines } from './fakes/claude-helpers.js';
import { FakeGitHub } from './fakes/http/index.js';
import { startFactory, type FactoryProcess } from './process-harness.js';
import { removeDir, tempDir, waitFor } from './helpers.js';
import { freshDatabase, hasPg, PG_SKIP_NOTE, type TestDatabase } from './pg.js';
import { SseClient } from './sse-client.js';

interface Span {
  pid: number;
  task: string;
  worker: string;
  start: number;
  end: number;
}

/** The largest number of spans open at one instant. */
function maxOverlap(spans: Span[]): number {
  const points = spans
    .flatMap(
      (s) =>
        [
          [s.start, 1],
          [s.end, -1],
        ] as const,
    )
    // At equal times an end comes before a start: back-to-back runs do not overlap.
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let max = 0;
  for (const [, d] of points) {
    open += d;
    max = Math.max(max, open);
  }
  return max;
}

const PER_WORKER = 3;
const GLOBAL = 5;

describe.skipIf(!hasPg)(`one API and two workers on PostgreSQL${PG_SKIP_NOTE}`, () => {
  let dir: string;
  let db: TestDatabase;
  let github: FakeGitHub;
  let api: FactoryProcess;
  const workers: Record<string, FactoryProcess> = {};
  let base: Record<string, unknown>;
  let env: Record<string, string>;
  const spansFile = () => path.join(dir, 'spans.jsonl');
  const claudeLog = () => path.join(dir, 'claude.jsonl');
  const spans = (): Span[] => readJsonLines<Span>(spansFile());
  /** The task once it has ended (in review, failed or cancelled). */
  const finished = (id: number, what: string, timeoutMs: number) =>
    waitFor(
      async () => {
        const t = (await api.api('GET', `/api/tasks/${id}`)).json;
        return ['in_review', 'failed', 'cancelled'].includes(t.status) ? t : undefined;
      },
      { what, timeoutMs, intervalMs: 250 },
    );
  /** Until the task's log says a WIP checkpoint (with the agent's first edit) was pushed. */
  const checkpointPushed = (id: number) =>
    waitFor(
      async () => {
        const logs = (await api.api('GET', `/api/tasks/${id}/logs?limit=1000`)).json.logs as Array<{ message: string }>;
        return logs.some((l) => l.message.includes('pushed WIP checkpoint'));
      },
      { what: 'a WIP checkpoint', timeoutMs: 30_000 },
    );

  const startWorker = async (name: string, agent: Record<string, unknown> = {}) => {
    const wdir = path.join(dir, name);
    workers[name] = await startFactory(
      wdir,
      {
        ...base,
        role: 'worker',
        public_url: api.url,
        max_concurrent_agents: PER_WORKER,
        agent: { ...(base.agent as object), ...agent, env: { ...(base.agent as { env: object }).env, FAKE_WORKER: name } },
      },
      env,
    );
  };

  beforeAll(async () => {
    dir = tempDir('factory-scale-');
    db = await freshDatabase();
    const origins = path.join(dir, 'origins');
    makeOrigin(origins, 'acme', 'web');
    github = new FakeGitHub({ validToken: GITHUB_TOKEN });
    const githubUrl = await github.start();
    base = {
      database: { url: db.url },
      github: { clone_base: origins, api_url: githubUrl },
      agent: {
        // Unsandboxed: the test reads the fake agent's files under /tmp and kills its processes by pid.
        command: FAKE_CLAUDE_PATH,
        kill_grace_seconds: 1,
        checkpoint_seconds: 1,
        sandbox: 'off',
        env: { FAKE_CLAUDE_LOG: claudeLog(), FAKE_CLAUDE_SPANS: spansFile(), FAKE_CLAUDE_STATE_DIR: path.join(dir, 'state') },
      },
      queue: { lease_seconds: 3, poll_interval_ms: 200, global_max_concurrent: GLOBAL },
      default_org: 'acme',
      memory: { enabled: false },
      pr_loop: { enabled: false },
      log_level: 'warn',
    };
    env = { GITHUB_TOKEN };
    api = await startFactory(path.join(dir, 'api'), { ...base, role: 'api' }, env);
    await startWorker('w1');
    await startWorker('w2');
  }, 90_000);

  afterAll(async () => {
    for (const p of [api, ...Object.values(workers)]) {
      if (p && p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill('SIGTERM');
        await p.exited;
      }
    }
    await github?.stop();
    await db?.drop();
    removeDir(dir);
  }, 60_000);

  it('lists the API and both workers with their heartbeats', async () => {
    const list = await waitFor(
      async () => {
        const r = (await api.api('GET', '/api/workers')).json as Array<{
          role: string;
          alive: boolean;
          host: string;
          pid: number;
          last_heartbeat: string;
          running_tasks: number[];
        }>;
        return r.filter((w) => w.alive).length === 3 ? r : undefined;
      },
      { what: 'three live processes in /api/workers' },
    );
    expect(list.map((w) => w.role).sort()).toEqual(['api', 'worker', 'worker']);
    for (const w of list) {
      expect(w.pid).toBeGreaterThan(0);
      expect(Date.parse(w.last_heartbeat)).toBeGreaterThan(Date.now() - 60_000);
      expect(w.running_tasks).toEqual([]);
    }
    const pids = [api, workers.w1!, workers.w2!].map((p) => p.child.pid).sort();
    expect(list.map((w) => w.pid).sort()).toEqual(pids);
    const health = (await api.api('GET', '/health')).json;
    expect(health).toMatchObject({ status: 'ok', role: 'api', database: 'postgres' });
  });

  it('runs 50 tasks exactly once across both workers within the limits, and the API streams every status', async () => {
    const sse = await new SseClient(`${api.url}/api/events/stream?types=task_status`).open();
    try {
      const ids: number[] = [];
      for (let i = 0; i < 50; i++) {
        const r = await api.api('POST', '/api/tasks?auto_run=true', {
          title: `Job ${i}`,
          description: '[fake:slow ms=150 lines=6]',
          repo: 'acme/web',
        });
        expect(r.status).toBe(201);
        ids.push(r.json.id);
      }
      const done = await waitFor(
        async () => {
          const all = (await api.api('GET', '/api/tasks?limit=200')).json as Array<{ id: number; status: string }>;
          const mine = all.filter((t) => ids.includes(t.id));
          return mine.every((t) => ['in_review', 'failed', 'done'].includes(t.status)) ? mine : undefined;
        },
        { what: '50 tasks finished', timeoutMs: 240_000, intervalMs: 250 },
      );
      expect(done.filter((t) => t.status !== 'in_review')).toEqual([]);

      // Exactly once: one agent run per task, one attempt each, one PR each.
      const rows = await db.query<{ id: number; attempts: number }>('SELECT id, attempts FROM tasks WHERE id = ANY($1)', [ids]);
      expect(rows.every((r) => Number(r.attempts) === 1)).toBe(true);
      const runs = await db.query<{ task_id: number; n: number }>(
        'SELECT task_id, COUNT(*)::int AS n FROM task_runs WHERE task_id = ANY($1) GROUP BY task_id',
        [ids],
      );
      expect(runs).toHaveLength(50);
      expect(runs.every((r) => r.n === 1)).toBe(true);
      const calls = readFakeClaudeLog(claudeLog()).filter((c) => ids.includes(Number(c.env.FACTORY_TASK_ID)));
      expect(calls).toHaveLength(50);
      expect(new Set(calls.map((c) => c.env.FACTORY_TASK_ID)).size).toBe(50);
      const pulls = github.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/pulls'));
      expect(pulls.length).toBeGreaterThanOrEqual(50);

      // Limits, from the recorded start and end of every agent process.
      const mySpans = spans().filter((s) => ids.includes(Number(s.task)));
      expect(mySpans).toHaveLength(50);
      const byWorker = { w1: mySpans.filter((s) => s.worker === 'w1'), w2: mySpans.filter((s) => s.worker === 'w2') };
      expect(byWorker.w1.length).toBeGreaterThan(0);
      expect(byWorker.w2.length).toBeGreaterThan(0);
      expect(byWorker.w1.length + byWorker.w2.length).toBe(50);
      // A worker's agents talk to that worker's own API (preview environments start where the worktree is).
      for (const c of calls) {
        const span = mySpans.find((sp) => sp.pid === c.pid)!;
        expect(c.env.FACTORY_API_URL).toBe(workers[span.worker]!.url);
      }
      expect(maxOverlap(byWorker.w1)).toBeLessThanOrEqual(PER_WORKER);
      expect(maxOverlap(byWorker.w2)).toBeLessThanOrEqual(PER_WORKER);
      expect(maxOverlap(mySpans)).toBeLessThanOrEqual(GLOBAL);
      // The global limit was reached, so it was really what held the workers back.
      expect(maxOverlap(mySpans)).toBeGreaterThan(PER_WORKER);

      // The API's stream carried every status change made by either worker, ids strictly increasing.
      const events = await sse.waitFor(
        (c) => {
          const evs = c.of('task_status').map((e) => JSON.parse(e.data) as { id: number; status: string });
          return ids.every((id) => evs.some((e) => e.id === id && e.status === 'in_review')) ? evs : undefined;
        },
        'in_review of all 50 tasks on the API stream',
        30_000,
      );
      const mine = events.filter((e) => ids.includes(e.id));
      for (const id of ids) expect(mine.filter((e) => e.id === id).map((e) => e.status)).toEqual(['queued', 'in_progress', 'in_review']);
      const seq = sse.of('task_status').map((e) => Number(e.id));
      expect(seq).toEqual([...seq].sort((a, b) => a - b));
      expect(new Set(seq).size).toBe(seq.length);

      // Last-Event-ID replay on the API returns what came after, from both workers.
      const mid = seq[Math.floor(seq.length / 2)]!;
      const replay = await new SseClient(`${api.url}/api/events/stream?types=task_status`, { 'Last-Event-ID': String(mid) }).open();
      try {
        const got = await replay.waitFor(
          (c) => (c.of('task_status').length >= seq.filter((x) => x > mid).length ? c.of('task_status') : undefined),
          'replayed events',
        );
        expect(got.map((e) => Number(e.id)).slice(0, seq.filter((x) => x > mid).length)).toEqual(seq.filter((x) => x > mid));
      } finally {
        replay.close();
      }
    } finally {
      sse.close();
    }
  }, 300_000);

  it('the API lists agents running on the workers and cancels one of them', async () => {
    const created = await api.api('POST', '/api/tasks?auto_run=true', {
      title: 'Cancel me remotely',
      description: '[fake:hang]',
      repo: 'acme/web',
    });
    const id = created.json.id as number;
    const agent = await waitFor(
      async () => {
        const list = (await api.api('GET', '/api/agents')).json as Array<{ task_id: number; pid: number | null; worker_id: string }>;
        return list.find((a) => a.task_id === id && a.pid);
      },
      { what: 'the agent listed by the API' },
    );
    const holder = Object.values(workers).find((w) => agent.worker_id.includes(`:${w.child.pid}:`));
    expect(holder).toBeDefined();
    const res = await api.api('POST', `/api/tasks/${id}/cancel`);
    expect(res.status).toBe(200);
    expect(res.json.status).toBe('cancelled');
    expect(res.json.error).toBe('Cancelled by request');
    await waitFor(() => processGone(agent.pid!), { what: 'the agent process gone' });
    expect((await api.api('GET', '/api/agents')).json.filter((a: { task_id: number }) => a.task_id === id)).toEqual([]);
  }, 60_000);

  it('a worker whose lease was taken over stops its copy of the agent and records nothing', async () => {
    const created = await api.api('POST', '/api/tasks?auto_run=true', {
      title: 'Lease stolen',
      description: '[fake:slow ms=150 lines=40]',
      repo: 'acme/web',
    });
    const id = created.json.id as number;
    const agent = await waitFor(
      async () => {
        const list = (await api.api('GET', '/api/agents')).json as Array<{ task_id: number; pid: number | null }>;
        return list.find((a) => a.task_id === id && a.pid);
      },
      { what: 'the agent running' },
    );
    // As if another worker had found the lease lapsed and taken it (its lease lapses in turn: nobody renews it).
    await db.query(`UPDATE tasks SET lease_owner = 'elsewhere:1:000000', lease_expires_at = $1 WHERE id = $2`, [Date.now() + 2000, id]);
    await waitFor(() => processGone(agent.pid!), { what: 'the agent stopped', timeoutMs: 20_000 });
    const done = await finished(id, 'the task finished after the lapsed lease was recovered', 60_000);
    expect(done.status).toBe('in_review');
    expect(done.attempts).toBe(2);
    const logs = (await api.api('GET', `/api/tasks/${id}/logs?limit=1000`)).json.logs as Array<{ message: string }>;
    expect(logs.some((l) => l.message.includes('another worker has taken this task over'))).toBe(true);
    // The stopped copy did not record a result or a handoff: the only handoff is the finished run's.
    const handoffs = (await api.api('GET', `/api/tasks/${id}/handoffs?direction=from`)).json as unknown[];
    expect(handoffs).toHaveLength(1);
  }, 120_000);

  it('kill -9 of a worker mid-task: the other worker takes the task over from its checkpoint and opens one PR', async () => {
    const pullsBefore = github.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/pulls')).length;
    const created = await api.api('POST', '/api/tasks?auto_run=true', {
      title: 'Survives a dead worker',
      description: '[fake:slow ms=150 lines=60]',
      repo: 'acme/web',
    });
    const id = created.json.id as number;
    // Running, and a checkpoint with the agent's first edit has been pushed.
    await checkpointPushed(id);
    const list = (await api.api('GET', '/api/workers')).json as Array<{ pid: number; running_tasks: number[] }>;
    const holder = await waitFor(
      async () => {
        const l = (await api.api('GET', '/api/workers')).json as Array<{ pid: number; running_tasks: number[] }>;
        return l.find((w) => w.running_tasks.includes(id));
      },
      { what: 'the worker running the task' },
    );
    expect(list.length).toBeGreaterThanOrEqual(3);
    const victimName = Object.entries(workers).find(([, p]) => p.child.pid === holder.pid)![0];
    const survivorName = victimName === 'w1' ? 'w2' : 'w1';
    workers[victimName]!.child.kill('SIGKILL');
    await workers[victimName]!.exited;

    const done = await finished(id, 'the task finished on the other worker', 90_000);
    expect(done.error).toBe('');
    expect(done.status).toBe('in_review');
    expect(done.attempts).toBe(2);
    const calls = readFakeClaudeLog(claudeLog()).filter((c) => c.env.FACTORY_TASK_ID === String(id));
    expect(calls).toHaveLength(2);
    const workerOf = (pid: number) => spans().find((s) => s.pid === pid)?.worker;
    expect(workerOf(calls[1]!.pid)).toBe(survivorName);
    // Another host's Claude session cannot be resumed here: a fresh session told about the earlier work.
    expect(calls[1]!.resumed).toBe(false);
    expect(calls[1]!.prompt).toContain('Continuing interrupted work');
    // The first attempt's edit came across through the checkpoint and is on the PR branch.
    const origin = path.join(dir, 'origins', 'acme', 'web.git');
    const file = gitOut(origin, 'show', `${done.branch_name}:FAKE_CHANGE.md`);
    expect(file.split('\n').filter((l) => l.includes(`task ${id}`)).length).toBeGreaterThanOrEqual(2);
    // The hidden checkpoint ref is gone once the task is done; exactly one new PR.
    expect(gitOut(origin, 'for-each-ref', `refs/factory/wip/${id}`)).toBe('');
    expect(github.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/pulls')).length).toBe(pullsBefore + 1);
    // The dead worker's agent was found on this host and stopped by the survivor.
    await waitFor(() => processGone(calls[0]!.pid), { what: 'the orphaned agent gone' });
  }, 150_000);

  it('with a shared Claude session store, the worker taking a task over resumes its session', async () => {
    // One worker is left after the previous test; the task can only start there.
    const [firstName, first] = Object.entries(workers).find(([, p]) => p.child.exitCode === null && p.child.signalCode === null)!;
    const created = await api.api('POST', '/api/tasks?auto_run=true', {
      title: 'Resume elsewhere',
      // Long enough that the first worker is still running it when w3 is up (a second start under CI
      // load can take longer than a 9 s agent; a finished, pushed branch would then leave nothing to resume).
      description: '[fake:slow ms=150 lines=150]',
      repo: 'acme/web',
    });
    const id = created.json.id as number;
    await checkpointPushed(id);
    await startWorker('w3', { shared_session_store: true });
    first.child.kill('SIGKILL');
    await first.exited;
    const done = await finished(id, 'the task finished on the new worker', 90_000);
    expect(done.status).toBe('in_review');
    const calls = readFakeClaudeLog(claudeLog()).filter((c) => c.env.FACTORY_TASK_ID === String(id));
    expect(calls).toHaveLength(2);
    const workerOf = (pid: number) => spans().find((s) => s.pid === pid)?.worker;
    expect(calls[1]!.env.FACTORY_API_URL).toBe(workers.w3!.url);
    expect(workerOf(calls[1]!.pid)).toBe('w3');
    expect(firstName).not.toBe('w3');
    expect(calls[1]!.resumed).toBe(true);
    expect(calls[1]!.argv[calls[1]!.argv.indexOf('--resume') + 1]).toBe(calls[0]!.session_id);
    expect(calls[1]!.prompt).toMatch(/the worker that ran this task stopped/);
    const origin = path.join(dir, 'origins', 'acme', 'web.git');
    const file = gitOut(origin, 'show', `${done.branch_name}:FAKE_CHANGE.md`);
    expect(file.split('\n').filter((l) => l.includes(`task ${id}`)).length).toBeGreaterThanOrEqual(2);
  }, 150_000);
});
