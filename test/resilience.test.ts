import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentEnv, GITHUB_TOKEN, gitOut, makeOrigin, processGone, type AgentEnv } from './agent-harness.js';
import { FAKE_CLAUDE_PATH, readFakeClaudeLog } from './fakes/claude-helpers.js';
import { FakeGitHub } from './fakes/http/index.js';
import { processConfig, startFactory } from './process-harness.js';
import { tempDir, waitFor } from './helpers.js';

describe('budgets, usage limits, stalls and queue control', () => {
  let env: AgentEnv;
  beforeAll(async () => {
    env = await createAgentEnv({ overrides: { budgets: { task_usd: 1 }, max_concurrent_agents: 2 } });
  });
  afterAll(async () => {
    await env.stopAll();
  });

  it('stops a task that exceeds its budget with a clear error', async () => {
    const t = await env.createTask({ title: 'Expensive', description: '[fake:budget cost=5]' });
    const done = await env.waitStatus(t.id, ['failed', 'in_review']);
    expect(done.status).toBe('failed');
    expect(done.error).toBe('Task budget exceeded: spent $5.00 of $1.00 (budgets.task_usd)');
    const call = env.fakeLog().find((r) => r.env.FACTORY_TASK_ID === String(t.id))!;
    expect(call.argv[call.argv.indexOf('--max-budget-usd') + 1]).toBe('1.00');
  });

  it('stops an agent that repeats the same tool call, naming the line', async () => {
    const t = await env.createTask({ title: 'Going in circles', description: '[fake:stall repeat=30]' });
    const done = await env.waitStatus(t.id, ['failed', 'in_review']);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/stalled: the agent repeated the same tool call 20 times in a row: Bash: npm test/);
  });

  it('pauses the queue at a usage limit and resumes the task with its session afterwards', async () => {
    const reset = Math.floor(Date.now() / 1000) + 2;
    const t = await env.createTask({ title: 'Limited', description: `[fake:usage-limit reset=${reset}]` });
    const paused = await waitFor(
      async () => {
        const q = (await env.app.inject({ url: '/api/queue' })).json();
        return q.paused ? q : undefined;
      },
      { what: 'queue paused' },
    );
    expect(paused.reason).toMatch(/usage limit/);
    expect(Date.parse(paused.until)).toBe(reset * 1000);
    // The pause is set as soon as the limit is seen; the run then settles (its log flushed) and
    // puts the task back in the queue.
    const waiting = await env.waitStatus(t.id, ['queued', 'in_review', 'failed'], 10_000);
    expect(waiting.status).toBe('queued');
    expect(waiting.error).toBe('');
    const done = await env.waitStatus(t.id, ['in_review', 'failed'], 30_000);
    expect(done.status).toBe('in_review');
    expect(done.attempts).toBe(1);
    const calls = env.fakeLog().filter((r) => r.env.FACTORY_TASK_ID === String(t.id));
    expect(calls).toHaveLength(2);
    expect(calls[1]!.argv[calls[1]!.argv.indexOf('--resume') + 1]).toBe(calls[0]!.session_id);
    expect((await env.app.inject({ url: '/api/queue' })).json().paused).toBe(false);
  });

  it('does not pause for limit text the agent merely read, and the attempt counts', async () => {
    const t = await env.createTask({ title: 'Reads about limits', description: '[fake:reads-limit-text]' });
    const done = await env.waitStatus(t.id, ['failed', 'in_review', 'done'], 30_000);
    expect(done.status).toBe('failed');
    expect(done.error).not.toMatch(/usage limit/i);
    expect(done.attempts).toBe(1);
    expect((await env.app.inject({ url: '/api/queue' })).json().paused).toBe(false);
  });

  it('lets an operator pause and resume the queue', async () => {
    const p = await env.app.inject({ method: 'POST', url: '/api/queue/pause', payload: { reason: 'maintenance' } });
    expect(p.json()).toMatchObject({ paused: true, reason: 'maintenance', by: 'operator', until: null });
    const t = await env.createTask({ title: 'Waits for the operator', description: '[fake:noop]' });
    // nothing starts while paused: the task is still queued after the scheduler had several chances
    const passes = env.services.scheduler.passes;
    await waitFor(() => env.services.scheduler.passes >= passes + 3, { what: 'scheduler passes' });
    expect((await env.getTask(t.id)).status).toBe('queued');
    await env.app.inject({ method: 'POST', url: '/api/queue/resume' });
    expect((await env.waitStatus(t.id, ['done', 'failed'])).status).toBe('done');
    expect((await env.app.inject({ method: 'POST', url: '/api/queue/pause', payload: { until: '2001-01-01T00:00:00Z' } })).statusCode).toBe(
      400,
    );
    expect((await env.app.inject({ method: 'POST', url: '/api/queue/pause', payload: { minutes: 'ten' } })).json().error.field).toBe(
      'minutes',
    );
  });

  it('reports cost and usage per day, repo and agent type', async () => {
    const stats = (await env.app.inject({ url: '/api/stats?since=2020-01-01T00:00:00Z' })).json();
    expect(stats.totals.runs).toBeGreaterThanOrEqual(4);
    expect(stats.totals.cost_usd).toBeGreaterThan(5);
    expect(stats.by_repo.map((r: { key: string }) => r.key)).toContain('acme/web');
    expect(stats.by_agent_type.find((r: { key: string }) => r.key === 'coder').runs).toBeGreaterThanOrEqual(4);
    expect(stats.by_day[0].key).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect((await env.app.inject({ url: '/api/stats?since=never' })).statusCode).toBe(400);
  });
});

describe('daily budget', () => {
  it('stops starting new work once the day is spent', async () => {
    const env = await createAgentEnv({ overrides: { budgets: { daily_usd: 0.01 }, max_concurrent_agents: 1 } });
    try {
      const first = await env.createTask({ title: 'First of the day' });
      expect((await env.waitStatus(first.id, ['in_review', 'failed'])).status).toBe('in_review');
      const second = await env.createTask({ title: 'Over budget' });
      const q = await waitFor(async () => {
        const s = (await env.app.inject({ url: '/api/queue' })).json();
        return s.daily_spent_usd >= 0.01 ? s : undefined;
      });
      expect(q.daily_budget_usd).toBe(0.01);
      const passes = env.services.scheduler.passes;
      await waitFor(() => env.services.scheduler.passes >= passes + 3, { what: 'scheduler passes' });
      expect((await env.getTask(second.id)).status).toBe('queued');
      expect(await env.services.queue.gate()).toMatchObject({ ok: false, reason: 'daily budget of $0.01 spent' });
    } finally {
      await env.stopAll();
    }
  });
});

describe('crash-safe resume', () => {
  it('kills an agent that outlived a killed server before resuming its task', async () => {
    const dir = tempDir();
    const config = processConfig(dir, { memory: { enabled: false }, log_level: 'warn', shutdown: { grace_seconds: 1 } });
    const first = await startFactory(dir, config);
    const created = await first.api('POST', '/api/tasks?auto_run=true', {
      title: 'Quiet job',
      description: '[fake:hang]',
      repo: 'acme/web',
    });
    const agent = await waitFor(async () =>
      (await first.api('GET', '/api/agents')).json.find(
        (a: { task_id: number; pid: number | null }) => a.task_id === created.json.id && a.pid,
      ),
    );
    await waitFor(async () => (await first.api('GET', `/api/tasks/${created.json.id}`)).json.session_id, { what: 'session recorded' });
    first.child.kill('SIGKILL');
    await first.exited;
    // a silent agent gets no EPIPE: it is still alive, orphaned
    expect(processGone(agent.pid)).toBe(false);
    const second = await startFactory(dir, config);
    try {
      await waitFor(() => processGone(agent.pid), { what: 'orphaned agent killed' });
      await waitFor(() => second.output().includes('killed an agent left running by a previous Factory process'), { what: 'reap logged' });
      const resumed = await waitFor(
        async () => (await second.api('GET', '/api/agents')).json.find((a: { task_id: number }) => a.task_id === created.json.id),
        { what: 'task running again' },
      );
      expect(resumed.attempt).toBe(2);
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });

  it('after kill -9 of the server, the task resumes its session with its edits and ends with one PR', async () => {
    const dir = tempDir();
    const origins = path.join(dir, 'origins');
    makeOrigin(origins, 'acme', 'web');
    const github = new FakeGitHub({ validToken: GITHUB_TOKEN });
    const apiUrl = await github.start();
    const claudeLog = path.join(dir, 'claude.jsonl');
    const config = {
      github: { clone_base: origins, api_url: apiUrl },
      agent: {
        command: FAKE_CLAUDE_PATH,
        kill_grace_seconds: 1,
        sandbox: 'off',
        env: { FAKE_CLAUDE_LOG: claudeLog, FAKE_CLAUDE_STATE_DIR: path.join(dir, 'state') },
      },
      default_org: 'acme',
      memory: { enabled: false },
      log_level: 'warn',
    };
    const env = { GITHUB_TOKEN };
    const first = await startFactory(dir, config, env);
    let taskId = 0;
    try {
      const created = await first.api('POST', '/api/tasks?auto_run=true', {
        title: 'Long job',
        description: '[fake:slow ms=100 lines=30]',
        repo: 'acme/web',
      });
      taskId = created.json.id;
      // the agent has edited its file and is mid-way through its output
      await waitFor(
        async () =>
          (await first.api('GET', `/api/tasks/${taskId}/logs?limit=1000`)).json.logs.filter(
            (l: { stream: string }) => l.stream === 'stdout',
          ).length >= 6,
        { what: 'agent mid-task' },
      );
      first.child.kill('SIGKILL');
      await first.exited;
      const second = await startFactory(dir, config, env);
      try {
        const done = await waitFor(
          async () => {
            const t = (await second.api('GET', `/api/tasks/${taskId}`)).json;
            return ['in_review', 'failed'].includes(t.status) ? t : undefined;
          },
          { what: 'resumed task finished', timeoutMs: 30_000 },
        );
        expect(done.error).toBe('');
        expect(done.status).toBe('in_review');
        expect(done.attempts).toBe(2);
        const calls = readFakeClaudeLog(claudeLog).filter((r) => r.env.FACTORY_TASK_ID === String(taskId));
        expect(calls).toHaveLength(2);
        expect(calls[1]!.resumed).toBe(true);
        expect(calls[1]!.argv[calls[1]!.argv.indexOf('--resume') + 1]).toBe(calls[0]!.session_id);
        const origin = path.join(origins, 'acme', 'web.git');
        const subjects = gitOut(origin, 'log', '--format=%s', `main..${done.branch_name}`).split('\n');
        expect(subjects.some((s) => s.startsWith('WIP: checkpoint of task'))).toBe(true);
        // both runs' edits are on the branch: the first run's line survived the crash
        const file = gitOut(origin, 'show', `${done.branch_name}:FAKE_CHANGE.md`);
        expect(file.split('\n').filter((l) => l.includes(`task ${taskId}`)).length).toBeGreaterThanOrEqual(2);
        expect(github.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/pulls'))).toHaveLength(1);
      } finally {
        second.child.kill('SIGTERM');
        await second.exited;
      }
    } finally {
      if (first.child.exitCode === null) first.child.kill('SIGKILL');
      await github.stop();
    }
  });

  it('a workflow whose server was killed with SIGKILL finishes after the next start', async () => {
    const dir = tempDir();
    const github = new FakeGitHub({ validToken: GITHUB_TOKEN });
    const apiUrl = await github.start();
    const claudeLog = path.join(dir, 'claude.jsonl');
    const config = processConfig(dir, {
      github: { clone_base: path.join(dir, 'origins'), api_url: apiUrl },
      agent: {
        command: FAKE_CLAUDE_PATH,
        kill_grace_seconds: 1,
        sandbox: 'off',
        env: { FAKE_CLAUDE_LOG: claudeLog, FAKE_CLAUDE_STATE_DIR: path.join(dir, 'state') },
      },
      memory: { enabled: false },
      log_level: 'warn',
    });
    const first = await startFactory(dir, config, { GITHUB_TOKEN });
    let second: Awaited<ReturnType<typeof startFactory>> | undefined;
    try {
      const wf = (
        await first.api('POST', '/api/workflows/code_review', {
          title: 'Survive a crash',
          description: '[fake:coder=slow ms=100 lines=30] [fake:reviewer=review verdicts=approve]',
          repo: 'acme/web',
        })
      ).json;
      await waitFor(() => readFakeClaudeLog(claudeLog).some((r) => r.env.FACTORY_AGENT_TYPE === 'coder'), { what: 'coder started' });
      await waitFor(
        async () =>
          (await first.api('GET', `/api/tasks?limit=5`)).json.some(
            (t: { session_id: string; workflow_id: number }) => t.workflow_id === wf.id && t.session_id,
          ),
        { what: 'session recorded' },
      );
      first.child.kill('SIGKILL');
      await first.exited;
      second = await startFactory(dir, config, { GITHUB_TOKEN });
      const done = await waitFor(
        async () => {
          const w = (await second!.api('GET', `/api/workflows/${wf.id}`)).json;
          return ['completed', 'failed', 'cancelled'].includes(w.status) ? w : undefined;
        },
        { what: 'workflow finished', timeoutMs: 40_000 },
      );
      expect(done.error).toBe('');
      expect(done.status).toBe('completed');
      expect(done.result).toBe('approved');
      const coder = readFakeClaudeLog(claudeLog).filter((r) => r.env.FACTORY_AGENT_TYPE === 'coder');
      expect(coder).toHaveLength(2);
      expect(coder[1]!.resumed).toBe(true);
      expect(github.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/pulls'))).toHaveLength(1);
    } finally {
      if (first.child.exitCode === null && first.child.signalCode === null) first.child.kill('SIGKILL');
      if (second) {
        second.child.kill('SIGTERM');
        await second.exited;
      }
      await github.stop();
    }
  });
});

describe('usage limits on every run', () => {
  it('fails a task that meets a limit more than agent.max_usage_limit_pauses runs in a row', async () => {
    const env = await createAgentEnv({ overrides: { agent: { max_usage_limit_pauses: 1 } } });
    try {
      const t = await env.createTask({ title: 'Always limited', description: '[fake:usage-limit times=5]' });
      const done = await env.waitStatus(t.id, ['failed', 'in_review'], 60_000);
      expect(done.status).toBe('failed');
      expect(done.error).toMatch(/usage limit on 2 runs in a row \(agent.max_usage_limit_pauses is 1\)/);
      expect(env.fakeLog().filter((r) => r.env.FACTORY_TASK_ID === String(t.id))).toHaveLength(2);
    } finally {
      await env.stopAll();
    }
  });
});
