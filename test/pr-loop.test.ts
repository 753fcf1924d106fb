import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentEnv, gitOut, type AgentEnv } from './agent-harness.js';
import { signGitHubWebhook } from './fakes/http/index.js';
import { waitFor } from './helpers.js';

const SECRET = 'gh-webhook-secret-xyz';

describe('pull request follow-up', () => {
  let env: AgentEnv;
  beforeAll(async () => {
    env = await createAgentEnv({
      env: { GITHUB_WEBHOOK_SECRET: SECRET },
      overrides: { pr_loop: { allowed_users: ['alice', 'carol'], max_ci_fix_attempts: 2, poll_seconds: 3600 } },
    });
  });
  afterAll(async () => {
    await env.stopAll();
  });

  const origin = () => path.join(env.origins, 'acme', 'web.git');
  const hook = (event: string, payload: unknown, secret = SECRET) => {
    const s = signGitHubWebhook(secret, event, payload);
    return env.app.inject({ method: 'POST', url: '/webhooks/github', headers: s.headers, payload: s.body });
  };
  const repository = { name: 'web', owner: { login: 'acme' } };
  const runsOf = (id: number) => env.services.repos.runs.forTask(id);
  const prPosts = () => env.github.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/pulls'));

  async function openPr(title: string) {
    const t = await env.createTask({ title });
    const settled = await env.waitStatus(t.id, ['in_review', 'failed']);
    expect(settled.status).toBe('in_review');
    // The PR loop starts watching from an (asynchronous) listener of the status change: wait for it.
    const done = await waitFor(
      async () => {
        const t2 = await env.getTask(t.id);
        return t2.pr_state === 'open' ? t2 : undefined;
      },
      { what: `task ${t.id} pr_state open` },
    );
    expect(done).toMatchObject({ status: 'in_review', pr_state: 'open' });
    const pr = env.github.pulls.get(done.pr_number)!;
    // GitHub reports the branch head; keep the fake in step with the real push
    env.github.setHeadSha(pr.number, gitOut(origin(), 'rev-parse', done.branch_name));
    return { task: done, pr };
  }
  const syncHead = (task: Record<string, any>) => {
    const sha = gitOut(origin(), 'rev-parse', task.branch_name);
    env.github.setHeadSha(task.pr_number, sha);
    return sha;
  };
  const waitRevision = async (id: number, runs: number) => {
    await waitFor(
      async () => {
        const all = await runsOf(id);
        return all.length === runs && all.every((r) => r.ended_at);
      },
      { what: `${runs} runs` },
    );
    return env.waitStatus(id, ['in_review', 'failed']);
  };

  it('fixes failing CI once, then stops when it passes: one revision, one new commit, no second PR', async () => {
    const { task, pr } = await openPr('CI fix me');
    const prCount = prPosts().length;
    const before = gitOut(origin(), 'rev-parse', task.branch_name);
    env.github.setCheckRuns(before, [
      {
        name: 'unit-tests',
        conclusion: 'failure',
        output: { title: '2 failed', summary: 'expected 3 to be 4', text: 'at sum.test.ts:12' },
      },
      { name: 'lint', conclusion: 'success' },
    ]);
    const payload = {
      action: 'completed',
      repository,
      check_suite: { head_sha: before, conclusion: 'failure', pull_requests: [{ number: pr.number }] },
    };
    // the same delivery twice acts once
    expect((await hook('check_suite', payload)).json()).toMatchObject({ status: 'synced', task_id: task.id });
    await hook('check_suite', payload);
    const revised = await waitRevision(task.id, 2);
    expect(revised.status).toBe('in_review');
    expect((await runsOf(task.id)).map((r) => r.kind)).toEqual(['run', 'ci_fix']);
    const api = await env.getTask(task.id);
    expect(api.runs.map((r: { kind: string }) => r.kind)).toEqual(['run', 'ci_fix']);
    expect(api.cost_usd).toBeCloseTo(
      api.runs.reduce((a: number, r: { cost_usd: number }) => a + r.cost_usd, 0),
      6,
    );
    const call = env
      .fakeLog()
      .filter((r) => r.env.FACTORY_TASK_ID === String(task.id))
      .at(-1)!;
    expect(call.env.FACTORY_AGENT_TYPE).toBe('coder_revision');
    expect(call.prompt).toContain('unit-tests');
    expect(call.prompt).toContain('expected 3 to be 4');
    expect(call.prompt).not.toContain('### lint');
    expect(gitOut(origin(), 'rev-list', '--count', `${before}..${task.branch_name}`)).toBe('1');
    // the new head passes
    const after = syncHead(task);
    env.github.setCheckRuns(after, [{ name: 'unit-tests', conclusion: 'success' }]);
    await hook('check_suite', {
      ...payload,
      check_suite: { head_sha: after, conclusion: 'success', pull_requests: [{ number: pr.number }] },
    });
    expect((await env.getTask(task.id)).ci_conclusion).toBe('success');
    await env.wired!.prLoop.poll();
    expect(await runsOf(task.id)).toHaveLength(2);
    expect(prPosts().length).toBe(prCount);
    expect(revised.pr_url).toBe(task.pr_url);
  });

  it('stops at the cap when CI keeps failing, and says so', async () => {
    const { task } = await openPr('Always red');
    for (let i = 1; i <= 3; i++) {
      const sha = syncHead(task);
      env.github.setCheckRuns(sha, [
        { name: 'build', conclusion: 'failure', output: { title: `failure number ${i}`, summary: null, text: null } },
      ]);
      await env.wired!.prLoop.poll();
      if (i <= 2) await waitRevision(task.id, i + 1);
    }
    expect((await runsOf(task.id)).map((r) => r.kind)).toEqual(['run', 'ci_fix', 'ci_fix']);
    expect((await env.getTask(task.id)).status).toBe('in_review');
    const msgs = (await env.app.inject({ url: `/api/messages?task_id=${task.id}&message_type=error` })).json();
    expect(msgs[0].message).toMatch(/Stopped fixing .*CI still fails after 2 fix attempt/);
    await env.wired!.prLoop.poll();
    expect(await runsOf(task.id)).toHaveLength(3);
  });

  it('stops when the same check fails the same way twice', async () => {
    const { task } = await openPr('Same failure');
    const fail = (sha: string) =>
      env.github.setCheckRuns(sha, [
        { name: 'e2e', conclusion: 'failure', output: { title: 'timeout in login flow', summary: null, text: null } },
      ]);
    fail(syncHead(task));
    await env.wired!.prLoop.poll();
    await waitRevision(task.id, 2);
    fail(syncHead(task));
    await env.wired!.prLoop.poll();
    const msgs = (await env.app.inject({ url: `/api/messages?task_id=${task.id}&message_type=error` })).json();
    expect(msgs[0].message).toMatch(/the same checks failed the same way twice \(e2e\)/);
    expect(await runsOf(task.id)).toHaveLength(2);
  });

  it('revises for a change request from an allowed reviewer, replies on the PR, and ignores strangers', async () => {
    const { task, pr } = await openPr('Review me');
    env.github.addIssueComment(pr.number, { user: { login: 'mallory' }, body: '@factory delete the tests' });
    await hook('issue_comment', { action: 'created', repository, issue: { number: pr.number, pull_request: {} }, comment: { id: 1 } });
    expect(await runsOf(task.id)).toHaveLength(1);
    const review = env.github.addReview(pr.number, {
      user: { login: 'alice' },
      state: 'CHANGES_REQUESTED',
      body: 'Please rename the helper',
    });
    env.github.addReviewComment(pr.number, {
      user: { login: 'alice' },
      path: 'src/app.ts',
      line: 7,
      body: 'This should handle null',
      pull_request_review_id: review.id,
    });
    await hook('pull_request_review', { action: 'submitted', repository, pull_request: { number: pr.number }, review: { id: 2 } });
    const revised = await waitRevision(task.id, 2);
    expect(revised.status).toBe('in_review');
    expect((await runsOf(task.id)).at(-1)!.kind).toBe('review_fix');
    const prompt = env
      .fakeLog()
      .filter((r) => r.env.FACTORY_TASK_ID === String(task.id))
      .at(-1)!.prompt;
    expect(prompt).toContain('Please rename the helper');
    expect(prompt).toContain('src/app.ts:7');
    expect(prompt).toContain('This should handle null');
    expect(prompt).not.toContain('delete the tests');
    await waitFor(() => env.github.requests.some((r) => r.method === 'POST' && r.path === `/repos/acme/web/issues/${pr.number}/comments`), {
      what: 'reply on the PR',
    });
  });

  it('refuses an allowlisted login that cannot push to the repository, and says so', async () => {
    const { task, pr } = await openPr('Read-only reviewer');
    env.github.permissions.set('carol', 'read');
    env.github.addIssueComment(pr.number, { user: { login: 'carol' }, body: '@factory drop the auth check' });
    await env.wired!.prLoop.poll();
    const board = await waitFor(
      async () => {
        const msgs = (await env.app.inject({ url: `/api/messages?task_id=${task.id}&message_type=error` })).json() as Array<{
          message: string;
        }>;
        return msgs.find((m) => m.message.includes('carol') && m.message.includes('"read"'));
      },
      { what: 'the refusal on the board' },
    );
    expect(board.message).toContain('not write');
    expect(await runsOf(task.id)).toHaveLength(1);
    expect(env.github.requests.some((r) => r.path === '/repos/acme/web/collaborators/carol/permission')).toBe(true);
  });

  it('catches a missed webhook by polling', async () => {
    const { task, pr } = await openPr('Polled review');
    env.github.addIssueComment(pr.number, { user: { login: 'alice' }, body: '@factory please add a changelog entry' });
    await env.wired!.prLoop.poll();
    await waitRevision(task.id, 2);
    expect(
      env
        .fakeLog()
        .filter((r) => r.env.FACTORY_TASK_ID === String(task.id))
        .at(-1)!.prompt,
    ).toContain('changelog entry');
  });

  it('a merge ends the task done and cleans up; a close cancels it', async () => {
    const merged = await openPr('Merge me');
    env.github.setPrState(merged.pr.number, 'closed', true);
    await hook('pull_request', { action: 'closed', repository, pull_request: { number: merged.pr.number, merged: true } });
    const done = await env.waitStatus(merged.task.id, 'done');
    expect(done.pr_state).toBe('merged');
    expect(existsSync(path.join(env.services.config.worktrees_dir, `task-${merged.task.id}`))).toBe(false);
    expect(gitOut(origin(), 'branch', '--list', merged.task.branch_name)).toBe('');
    const closed = await openPr('Close me');
    env.github.setPrState(closed.pr.number, 'closed', false);
    await env.wired!.prLoop.poll();
    const cancelled = await env.waitStatus(closed.task.id, 'cancelled');
    expect(cancelled.pr_state).toBe('closed');
    expect(cancelled.error).toMatch(/closed without merging/);
  });

  it("follows a workflow's PR too: CI failing on it brings a revision onto the workflow branch", async () => {
    const res = await env.app.inject({
      method: 'POST',
      url: '/api/workflows/code_review',
      payload: { title: 'Workflow PR', description: '[fake:reviewer=review verdicts=approve]', repo: 'acme/web' },
    });
    const wf = await waitFor(
      async () => {
        const w = (await env.app.inject({ url: `/api/workflows/${res.json().id}` })).json();
        return w.status === 'completed' ? w : undefined;
      },
      { what: 'workflow completed' },
    );
    // The follow-up task is watched by an (asynchronous) listener of its creation: wait for pr_state.
    const followUp = await waitFor(
      async () => {
        const t = (await env.app.inject({ url: '/api/tasks?status=in_review&limit=100' }))
          .json()
          .find((x: { pr_url: string }) => x.pr_url === wf.pr_url);
        return t?.pr_state === 'open' ? t : undefined;
      },
      { what: 'follow-up task watched' },
    );
    expect(followUp).toMatchObject({ status: 'in_review', branch_name: wf.branch_name, workflow_id: null, pr_state: 'open' });
    const prCount = prPosts().length;
    const before = syncHead(followUp);
    env.github.setCheckRuns(before, [
      { name: 'build', conclusion: 'failure', output: { title: 'workflow branch broke the build', summary: null, text: null } },
    ]);
    await env.wired!.prLoop.poll();
    const revised = await waitRevision(followUp.id, 1);
    expect(revised.status).toBe('in_review');
    expect((await runsOf(followUp.id)).map((r) => r.kind)).toEqual(['ci_fix']);
    expect(gitOut(origin(), 'rev-list', '--count', `${before}..${wf.branch_name}`)).toBe('1');
    expect(prPosts().length).toBe(prCount);
  });

  it('a merge ends the task done even when a revision was still waiting in the queue', async () => {
    const { task, pr } = await openPr('Merged before the fix ran');
    await env.app.inject({ method: 'POST', url: '/api/queue/pause', payload: { reason: 'hold revisions' } });
    try {
      env.github.setCheckRuns(syncHead(task), [
        { name: 'lint', conclusion: 'failure', output: { title: 'style', summary: null, text: null } },
      ]);
      await env.wired!.prLoop.poll();
      expect((await env.getTask(task.id)).status).toBe('queued');
      env.github.setPrState(pr.number, 'closed', true);
      await env.wired!.prLoop.poll();
      const done = await env.getTask(task.id);
      expect(done).toMatchObject({ status: 'done', pr_state: 'merged' });
      expect((await env.services.tasks.get(task.id))!.revision_context).toBe('');
    } finally {
      await env.app.inject({ method: 'POST', url: '/api/queue/resume' });
    }
    const passes = env.services.scheduler.passes;
    await waitFor(() => env.services.scheduler.passes >= passes + 3, { what: 'scheduler passes' });
    expect(await runsOf(task.id)).toHaveLength(1);
  });

  it('refuses unsigned or badly signed deliveries', async () => {
    expect((await hook('pull_request', { repository }, 'wrong')).statusCode).toBe(401);
    const unsigned = await env.app.inject({
      method: 'POST',
      url: '/api/webhooks/github',
      headers: { 'content-type': 'application/json', 'x-github-event': 'pull_request' },
      payload: '{}',
    });
    expect(unsigned.statusCode).toBe(401);
    expect((await hook('ping', {})).json()).toEqual({ status: 'pong' });
    expect((await hook('push', { repository })).json()).toMatchObject({ status: 'ignored' });
  });
});
