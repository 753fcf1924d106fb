// A git host that cannot be reached is a reason to wait, not a verdict: the task waits visibly,
// keeps its attempts, and runs once the host is back. A repository that does not exist still fails.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAgentEnv, GITHUB_TOKEN, gitOut, makeOrigin, type AgentEnv } from './agent-harness.js';
import { startGitHttp, type GitHttpServer } from './fakes/git-http.js';
import { FakeGitHub } from './fakes/http/github.js';
import { freePort } from './process-harness.js';
import { tempDir, waitFor } from './helpers.js';

describe('unreachable git host', () => {
  let env: AgentEnv | undefined;
  let server: GitHttpServer | undefined;
  let stopGitHub: (() => Promise<void>) | undefined;
  afterAll(async () => {
    await env?.stopAll();
    await stopGitHub?.();
    await server?.close();
  });

  it('waits while the host is down, then finishes once it is back', async () => {
    const origins = path.join(tempDir('factory-unreach-'), 'origins');
    const bare = makeOrigin(origins, 'acme', 'web');
    gitOut(bare, 'config', 'http.receivepack', 'true');
    const port = await freePort(); // nothing listens there yet: connection refused
    const github = new FakeGitHub({ validToken: GITHUB_TOKEN });
    const apiUrl = await github.start();
    env = await createAgentEnv({ github, overrides: { github: { api_url: apiUrl, clone_base: `http://127.0.0.1:${port}` } } });
    stopGitHub = () => github.stop();
    const t = await env.createTask({ title: 'Through an outage', description: '[fake:success]' });
    const waiting = await waitFor(
      async () => {
        const task = await env!.getTask(t.id);
        return task.error.startsWith('Waiting for the git host since') ? task : undefined;
      },
      { what: 'the task to wait for the git host' },
    );
    expect(waiting.status).toBe('queued');
    expect(waiting.attempts).toBe(0);
    expect(waiting.error).toMatch(/cannot reach the git host/);
    expect(env.fakeLog()).toHaveLength(0);

    server = await startGitHttp(origins, GITHUB_TOKEN, port);
    const done = await env.waitStatus(t.id, ['in_review', 'failed'], 30_000);
    expect(done.error, done.error).toBe('');
    expect(done.status).toBe('in_review');
    expect(env.fakeLog().filter((r) => r.env.FACTORY_TASK_ID === String(t.id))).toHaveLength(1);
    expect(env.github.requests.filter((r) => r.method === 'POST' && r.path === '/repos/acme/web/pulls')).toHaveLength(1);
  });
});
