import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentEnv, gitOut, processGone, type AgentEnv } from './agent-harness.js';
import { FakeGitHub } from './fakes/http/index.js';
import { GITHUB_TOKEN } from './agent-harness.js';
import { tempDir, waitFor } from './helpers.js';

async function waitWorkflow(env: AgentEnv, id: number, status: string[], timeoutMs = 60_000) {
  return waitFor(
    async () => {
      const wf = (await env.app.inject({ url: `/api/workflows/${id}` })).json();
      return status.includes(wf.status) ? wf : undefined;
    },
    { timeoutMs, what: `workflow ${id} ${status.join('|')}` },
  );
}

const pullsPosted = (env: AgentEnv) => env.github.requests.filter((r) => r.method === 'POST' && /\/pulls$/.test(r.path));

describe('workflows end to end', () => {
  let env: AgentEnv;
  beforeAll(async () => {
    env = await createAgentEnv({ overrides: { max_concurrent_agents: 2 } });
  });
  afterAll(async () => {
    await env.stopAll();
  });

  it('loops coder → reviewer → revision until approved, then opens one PR', async () => {
    const before = pullsPosted(env).length;
    const res = await env.app.inject({
      method: 'POST',
      url: '/api/workflows/code_review',
      payload: {
        title: 'Add caching',
        description: 'Cache responses [fake:reviewer=review verdicts=reject,reject,approve]',
        repo: 'acme/web',
      },
    });
    expect(res.statusCode).toBe(201);
    const wf = await waitWorkflow(env, res.json().id, ['completed', 'failed', 'cancelled']);
    expect(wf.error).toBe('');
    expect(wf.status).toBe('completed');
    expect(wf.result).toBe('approved');
    const tasks = (await env.app.inject({ url: `/api/tasks?limit=100` }))
      .json()
      .filter((t: { workflow_id: number }) => t.workflow_id === wf.id);
    const types = tasks.map((t: { agent_type: string }) => t.agent_type).reverse();
    expect(types).toEqual(['coder', 'reviewer', 'coder_revision', 'reviewer', 'coder_revision', 'reviewer']);
    expect(tasks.every((t: { status: string }) => t.status === 'done')).toBe(true);
    expect(wf.iteration).toBe(2);
    expect(pullsPosted(env).length).toBe(before + 1);
    const pr = pullsPosted(env).at(-1)!;
    expect(pr.json).toMatchObject({ title: 'Add caching', head: wf.branch_name, base: 'main' });
    expect(String((pr.json as { body?: string } | undefined)?.body)).toMatch(/Approved by the reviewer after 3 review round/);
    expect(wf.pr_url).toMatch(/pull\/\d+$/);
    // the reviewer step carries its summary and counts; the revision got the review in its prompt
    const reviews = wf.steps.filter((s: { agent_type: string }) => s.agent_type === 'reviewer');
    expect(reviews.at(-1).review).toMatchObject({ approved: true });
    const revisionCall = env.fakeLog().find((r) => r.env.FACTORY_AGENT_TYPE === 'coder_revision')!;
    expect(revisionCall.prompt).toMatch(/Review to address/);
    expect(revisionCall.prompt).toMatch(/Missing error handling/);
    // every step's work is on the one branch; the worktree is gone
    const origin = path.join(env.origins, 'acme', 'web.git');
    expect(Number(gitOut(origin, 'rev-list', '--count', `main..${wf.branch_name}`))).toBeGreaterThanOrEqual(3);
    expect(existsSync(path.join(env.services.config.worktrees_dir, `workflow-${wf.id}`))).toBe(false);
    const handoffs = (await env.app.inject({ url: `/api/workflows/${wf.id}/handoffs` })).json();
    expect(handoffs.length).toBe(6);
    expect(handoffs[1].output_type).toBe('review_comments');
    expect(handoffs[0].to_task_id).toBe(tasks.at(-2).id);
  });

  it('stops at max_iterations with a clear final state when the review always rejects', async () => {
    const res = await env.app.inject({
      method: 'POST',
      url: '/api/workflows',
      payload: {
        workflow_name: 'code_review',
        title: 'Never good enough',
        description: '[fake:reviewer=review verdicts=reject]',
        repo: 'acme/web',
      },
    });
    const wf = await waitWorkflow(env, res.json().id, ['completed', 'failed', 'cancelled']);
    expect(wf.status).toBe('completed');
    expect(wf.result).toBe('max_iterations');
    expect(wf.error).toMatch(/Stopped after 3 iterations without the reviewer's approval/);
    expect(wf.steps.map((s: { status: string }) => s.status)).toEqual(['completed', 'completed', 'completed']);
    const pr = pullsPosted(env).at(-1)!;
    expect(String((pr.json as { body?: string } | undefined)?.body)).toMatch(/Not approved: the iteration limit was reached/);
    expect(String((pr.json as { body?: string } | undefined)?.body)).toMatch(/\[major\]/);
  });

  it('cancelling a workflow kills the running agent', async () => {
    const res = await env.app.inject({
      method: 'POST',
      url: '/api/workflows/code_review',
      payload: { title: 'Hang', description: '[fake:coder=hang]', repo: 'acme/web' },
    });
    const id = res.json().id;
    const agent = await waitFor(
      async () => {
        const agents = (await env.app.inject({ url: '/api/agents' })).json();
        return agents.find((a: { task_title: string; pid: number | null }) => a.task_title.includes('Hang') && a.pid);
      },
      { what: 'agent running' },
    );
    const cancel = await env.app.inject({ method: 'POST', url: `/api/workflows/${id}/cancel` });
    expect(cancel.statusCode).toBe(200);
    expect(cancel.json().status).toBe('cancelled');
    await waitFor(() => processGone(agent.pid), { what: 'agent gone' });
    expect((await env.getTask(agent.task_id)).status).toBe('cancelled');
    expect((await env.app.inject({ method: 'POST', url: `/api/workflows/${id}/cancel` })).statusCode).toBe(409);
  });

  it("delivers a message one agent addressed to another into that agent's prompt", async () => {
    const res = await env.app.inject({
      method: 'POST',
      url: '/api/workflows/code_review',
      payload: {
        title: 'Talk to the reviewer',
        repo: 'acme/web',
        description:
          '[fake:coder=message to=reviewer type=question content=Is_a_60s_cache_TTL_ok?] [fake:reviewer=review verdicts=approve]',
      },
    });
    const wf = await waitWorkflow(env, res.json().id, ['completed', 'failed', 'cancelled']);
    expect(wf.status).toBe('completed');
    const board = (await env.app.inject({ url: `/api/messages?workflow_id=${wf.id}&message_type=question` })).json();
    expect(board.find((m: { recipient: string }) => m.recipient === 'reviewer').message).toBe('Is a 60s cache TTL ok?');
    const reviewer = env
      .fakeLog()
      .filter((r) => r.env.FACTORY_WORKFLOW_ID === String(wf.id) && r.env.FACTORY_AGENT_TYPE === 'reviewer')[0]!;
    expect(reviewer.prompt).toContain('Messages addressed to you (reviewer)');
    expect(reviewer.prompt).toContain('Is a 60s cache TTL ok?');
  });

  it('validates workflow requests', async () => {
    const post = (url: string, payload: unknown) => env.app.inject({ method: 'POST', url, payload: payload as object });
    const unknown = await post('/api/workflows', { workflow_name: 'nope', title: 'x', repo: 'acme/web' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().detail).toBe("Unknown workflow: 'nope'. Available: code_review");
    const bad = await post('/api/workflows', {
      workflow_name: 'mine',
      title: 'x',
      repo: 'acme/web',
      definition: { steps: [{ agent: 'coder', loop_to: 'x' }] },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.field).toBe('definition');
    expect(
      (await post('/api/workflows', { workflow_name: 'mine', title: 'x', repo: 'acme/web', definition: { steps: [{ agent: 'wizard' }] } }))
        .statusCode,
    ).toBe(400);
    expect((await post('/api/workflows/code_review', { repo: 'acme/web' })).json().error.field).toBe('title');
    expect((await env.app.inject({ url: '/api/workflows/999' })).statusCode).toBe(404);
    expect((await env.app.inject({ url: '/api/workflows?status=weird' })).statusCode).toBe(400);
    expect((await post('/api/handoffs', { from_task_id: 99999 })).statusCode).toBe(404);
    expect((await post('/api/handoffs', { from_task_id: 'one' })).statusCode).toBe(400);
    const t = await env.createTask({ title: 'For a handoff' }, false);
    const h = await post('/api/handoffs', { from_task_id: t.id, summary: 'hi', content: 'body' });
    expect(h.statusCode).toBe(201);
    expect((await env.app.inject({ url: `/api/handoffs/${h.json().id}` })).json()).toMatchObject({ summary: 'hi', output_type: 'general' });
    expect((await env.app.inject({ url: `/api/tasks/${t.id}/handoffs?direction=from` })).json()).toHaveLength(1);
    expect((await env.app.inject({ url: `/api/tasks/${t.id}/handoffs?direction=sideways` })).statusCode).toBe(400);
  });

  it('revision mode: a second task for the same Plane issue pushes to the first PR', async () => {
    const first = await env.createTask({ title: 'Issue work', plane_issue_id: 'issue-42' });
    const a = await env.waitStatus(first.id, ['in_review', 'failed']);
    expect(a.status).toBe('in_review');
    const prCount = pullsPosted(env).length;
    const origin = path.join(env.origins, 'acme', 'web.git');
    const headBefore = gitOut(origin, 'rev-parse', a.branch_name);
    const second = await env.createTask({ title: 'Issue work, round two', plane_issue_id: 'issue-42' });
    expect(second.agent_type).toBe('coder_revision');
    expect(second.branch_name).toBe(a.branch_name);
    const b = await env.waitStatus(second.id, ['in_review', 'failed']);
    expect(b.status).toBe('in_review');
    expect(b.pr_url).toBe(a.pr_url);
    expect(b.parent_task_id).toBe(a.id);
    expect(pullsPosted(env).length).toBe(prCount);
    const headAfter = gitOut(origin, 'rev-parse', a.branch_name);
    expect(headAfter).not.toBe(headBefore);
    expect(gitOut(origin, 'rev-list', '--count', `${headBefore}..${headAfter}`)).toBe('1');
    const call = env.fakeLog().find((r) => r.env.FACTORY_TASK_ID === String(second.id))!;
    expect(call.prompt).toMatch(/Earlier work on this issue/);
    // the first task's handoff travels with it
    const firstHandoff = (await env.app.inject({ url: `/api/tasks/${a.id}/handoffs?direction=from` })).json();
    expect(firstHandoff).toHaveLength(1);
    expect(call.prompt).toContain('Its handoff:');
  });
});

describe('workflow restart', () => {
  it('a workflow interrupted by a server stop finishes after the next start', async () => {
    const dir = tempDir();
    const github = new FakeGitHub({ validToken: GITHUB_TOKEN });
    await github.start();
    const a = await createAgentEnv({ dir, github, overrides: { shutdown: { grace_seconds: 0 } } });
    const res = await a.app.inject({
      method: 'POST',
      url: '/api/workflows/code_review',
      payload: {
        title: 'Survive',
        description: '[fake:coder=slow ms=100 lines=40] [fake:reviewer=review verdicts=approve]',
        repo: 'acme/web',
      },
    });
    const id = res.json().id;
    // wait until the agent itself is at work (it has printed output), then stop the server
    await waitFor(
      async () => {
        const t = (await a.app.inject({ url: '/api/tasks?limit=5' })).json().find((x: { workflow_id: number }) => x.workflow_id === id);
        return t && (await a.services.repos.logs.list(t.id, { limit: 1000 })).filter((l) => l.stream === 'stdout').length >= 3;
      },
      { what: 'coder output' },
    );
    await a.stopAll();
    const b = await createAgentEnv({ dir, github });
    try {
      const wf = await waitWorkflow(b, id, ['completed', 'failed', 'cancelled']);
      expect(wf.error).toBe('');
      expect(wf.status).toBe('completed');
      expect(wf.result).toBe('approved');
      const coder = b.fakeLog().filter((r) => r.env.FACTORY_AGENT_TYPE === 'coder');
      expect(coder.length).toBe(2);
      expect(coder[1]!.resumed).toBe(true);
      expect(github.requests.filter((r) => r.method === 'POST' && /\/pulls$/.test(r.path)).length).toBe(1);
    } finally {
      await b.stopAll();
      await github.stop();
    }
  });
});
