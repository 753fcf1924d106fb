import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentEnv, gitOut, GITHUB_TOKEN, processGone, type AgentEnv } from './agent-harness.js';
import { waitFor } from './helpers.js';

function walk(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name === 'config') out.push(p);
  }
  return out;
}

describe('agent execution end to end', () => {
  let env: AgentEnv;
  beforeAll(async () => {
    env = await createAgentEnv({
      overrides: { max_concurrent_agents: 3, agent_activity_timeout_minutes: 0.03, agent_timeout_minutes: 0.08 },
    });
  });
  afterAll(async () => {
    await env.stopAll();
  });

  it('runs the agent, pushes its commit and opens a pull request', async () => {
    const t = await env.createTask({ title: 'Add a greeting', description: 'Say hello [fake:success]' });
    const done = await env.waitStatus(t.id, ['in_review', 'failed']);
    expect(done.error).toBe('');
    expect(done.status).toBe('in_review');
    expect(done.branch_name).toMatch(new RegExp(`^factory/${t.id}-add-a-greeting$`));
    expect(done.base_branch).toBe('main');
    const pr = env.github.requests.find((r) => r.method === 'POST' && r.path === '/repos/acme/web/pulls');
    expect(pr?.json).toMatchObject({ title: 'Add a greeting', head: done.branch_name, base: 'main' });
    expect(String((pr?.json as { body?: string } | undefined)?.body)).toContain('Say hello');
    expect(pr?.headers.authorization).toBe(`Bearer ${GITHUB_TOKEN}`);
    expect(done.pr_url).toMatch(/\/acme\/web\/pull\/\d+$/);
    expect(done.pr_number).toBeTypeOf('number');
    // the branch on the bare origin carries the agent's file
    const origin = path.join(env.origins, 'acme', 'web.git');
    const files = gitOut(origin, 'ls-tree', '--name-only', done.branch_name);
    expect(files.split('\n')).toContain('FAKE_CHANGE.md');
    expect(gitOut(origin, 'log', '-1', '--format=%s', done.branch_name)).toBe('Add a greeting');
    expect(gitOut(origin, 'rev-parse', 'main')).not.toBe(gitOut(origin, 'rev-parse', done.branch_name));
    // cost and session from the result event; worktree gone
    expect(done.cost_usd).toBeGreaterThan(0);
    expect(done.session_id).not.toBe('');
    expect(done.usage.input_tokens).toBeGreaterThan(0);
    expect(existsSync(env.services.config.worktrees_dir + `/task-${t.id}`)).toBe(false);
    const logs = (await env.app.inject({ url: `/api/tasks/${t.id}/logs?limit=1000` })).json().logs;
    expect(logs.some((l: { message: string }) => l.message.includes('"type":"result"'))).toBe(true);
    expect(logs.some((l: { message: string; stream: string }) => l.stream === 'system' && l.message.includes('opened pull request'))).toBe(
      true,
    );
    // the agent was started the documented way
    const call = env.fakeLog().find((r) => r.env.FACTORY_TASK_ID === String(t.id))!;
    expect(call.argv).toEqual(
      expect.arrayContaining(['-p', '--output-format', 'stream-json', '--verbose', '--append-system-prompt', '--allowedTools']),
    );
    expect(call.cwd).toBe(path.join(env.services.config.worktrees_dir, `task-${t.id}`));
    expect(call.env.names).not.toContain('GITHUB_TOKEN');
    // at agent.nice (default 10): a busy agent leaves Factory its share of the CPU
    expect(call.priority).toBe(10);
    // the run's handoff names what it changed
    const [handoff] = (await env.app.inject({ url: `/api/tasks/${t.id}/handoffs?direction=from` })).json();
    expect(handoff).toMatchObject({ output_type: 'code_diff', summary: 'Implemented the change.' });
    expect(handoff.content).toContain('- FAKE_CHANGE.md');
  });

  it('ends done without a PR when the agent changed nothing', async () => {
    const before = env.github.requests.filter((r) => r.method === 'POST').length;
    const t = await env.createTask({ title: 'Just look', description: '[fake:noop]', agent_type: 'researcher' });
    const done = await env.waitStatus(t.id, ['done', 'failed', 'in_review']);
    expect(done.status).toBe('done');
    expect(done.pr_url).toBe('');
    expect(done.result_summary).toMatch(/No code changes/);
    expect(env.github.requests.filter((r) => r.method === 'POST').length).toBe(before);
  });

  it('kills an idle agent and its grandchild', async () => {
    const t = await env.createTask({ title: 'Idle', description: '[fake:grandchild]' });
    const gpid = await waitFor(() => (existsSync(env.pidFile) ? Number(readFileSync(env.pidFile, 'utf8')) : 0), { what: 'grandchild pid' });
    const done = await env.waitStatus(t.id, ['failed', 'in_review', 'done']);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/no output for/);
    await waitFor(() => processGone(gpid), { what: 'grandchild gone', timeoutMs: 5000 });
  });

  it('kills an agent that keeps talking past the total timeout', async () => {
    const t = await env.createTask({ title: 'Chatty', description: '[fake:chatty ms=100]' });
    const done = await env.waitStatus(t.id, ['failed', 'in_review', 'done']);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/timed out after/);
  });

  it('a crash without a result fails with the stderr tail', async () => {
    const t = await env.createTask({ title: 'Crash', description: '[fake:crash code=3]' });
    const done = await env.waitStatus(t.id, ['failed', 'in_review', 'done']);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/exited with code 3 without a result/);
    expect(done.error).toContain('fatal: simulated crash');
  });

  it('an agent error result fails the task', async () => {
    const t = await env.createTask({ title: 'Agent error', description: '[fake:error-result]' });
    const done = await env.waitStatus(t.id, ['failed', 'in_review', 'done']);
    expect(done.error).toBe('agent reported an error (error_during_execution): Simulated agent error');
  });

  it('cancels a running agent that ignores SIGTERM', async () => {
    const t = await env.createTask({ title: 'Stubborn', description: '[fake:ignore-sigterm]' });
    await waitFor(
      async () =>
        (await env.app.inject({ url: '/api/agents' }))
          .json()
          .some((a: { task_id: number; pid: number | null }) => a.task_id === t.id && a.pid),
      { what: 'agent pid' },
    );
    const agent = (await env.app.inject({ url: '/api/agents' })).json().find((a: { task_id: number }) => a.task_id === t.id);
    const res = await env.app.inject({ method: 'POST', url: `/api/tasks/${t.id}/cancel` });
    expect(res.statusCode).toBe(200);
    expect(res.json().status).toBe('cancelled');
    await waitFor(() => processGone(agent.pid), { what: 'agent gone' });
  });

  it('fails a task whose repository does not exist, with a clear error', async () => {
    const t = await env.createTask({ title: 'Ghost', repo: 'acme/nope' });
    const done = await env.waitStatus(t.id, ['failed', 'in_review', 'done']);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/acme\/nope.git does not exist or is not accessible/);
  });

  it('rejects a path-like repo name before anything runs', async () => {
    const res = await env.app.inject({ method: 'POST', url: '/api/tasks?auto_run=true', payload: { title: 'x', repo: '../x' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.field).toBe('repo');
  });

  it('runs two tasks on the same repository at once', async () => {
    const [a, b] = await Promise.all([
      env.createTask({ title: 'Parallel one', description: '[fake:slow ms=50 lines=5]' }),
      env.createTask({ title: 'Parallel two', description: '[fake:slow ms=50 lines=5]' }),
    ]);
    const [da, db] = await Promise.all([env.waitStatus(a.id, ['in_review', 'failed']), env.waitStatus(b.id, ['in_review', 'failed'])]);
    expect([da.status, db.status, da.error, db.error]).toEqual(['in_review', 'in_review', '', '']);
    expect(da.pr_url).not.toBe(db.pr_url);
  });

  it('never lets the token reach git config, the logs or the API', async () => {
    for (const file of [...walk(env.services.config.repos_dir), ...walk(env.services.config.worktrees_dir)]) {
      expect(readFileSync(file, 'utf8'), file).not.toContain(GITHUB_TOKEN);
    }
    const rows = await env.services.db.all<{ line: string }>('SELECT line FROM task_logs');
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.some((r) => r.line.includes(GITHUB_TOKEN))).toBe(false);
    const tasks = await env.app.inject({ url: '/api/tasks?limit=500' });
    expect(tasks.body).not.toContain(GITHUB_TOKEN);
    const health = await env.app.inject({ url: '/health' });
    expect(health.body).not.toContain(GITHUB_TOKEN);
    const remotes = gitOut(path.join(env.services.config.repos_dir, 'acme', 'web.git'), 'config', '--get', 'remote.origin.url');
    expect(remotes).not.toContain(GITHUB_TOKEN);
  });
});
