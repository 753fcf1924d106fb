// A PR that GitHub will not take when the task finishes (down, even after the client's retries) does
// not fail the task: the branch is pushed, the task waits in review saying so, and the PR is opened
// once GitHub is back — exactly one, and the PR loop follows it from then on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PR_PENDING_NOTE } from '../src/prloop/pending-pr.js';
import { createAgentEnv, gitOut, type AgentEnv } from './agent-harness.js';
import { waitFor } from './helpers.js';
import path from 'node:path';

describe('deferred pull request', () => {
  let env: AgentEnv;
  beforeAll(async () => {
    env = await createAgentEnv();
  });
  afterAll(async () => {
    await env.stopAll();
  });

  it('keeps the pushed work while GitHub is down and opens the PR once it is back', async () => {
    env.github.setDown(true);
    const task = await env.createTask({ title: 'Change while GitHub is down', description: '[fake:success]', repo: 'acme/web' });
    const waiting = await env.waitStatus(task.id, ['in_review', 'failed'], 30_000);
    expect(waiting.status).toBe('in_review');
    expect(waiting.error).toContain(PR_PENDING_NOTE);
    expect(waiting.pr_number).toBeFalsy();
    const origin = path.join(env.origins, 'acme', 'web.git');
    expect(gitOut(origin, 'branch', '--list', waiting.branch_name)).toContain(waiting.branch_name);

    env.github.setDown(false);
    const opened = await waitFor(
      async () => {
        const t = await env.getTask(task.id);
        return t.pr_number ? t : undefined;
      },
      { timeoutMs: 20_000, what: 'deferred PR opened' },
    );
    expect(opened).toMatchObject({ status: 'in_review', error: '' });
    expect(opened.pr_url).toContain('/pull/');
    const created = env.github.requests.filter((r) => r.method === 'POST' && r.path === '/repos/acme/web/pulls' && !r.failed);
    expect(created).toHaveLength(1);
    expect(env.github.pulls.size).toBe(1);
    // The PR loop follows it like any other.
    await waitFor(async () => (await env.getTask(task.id)).pr_state === 'open', { what: 'PR watched' });
  });
});
