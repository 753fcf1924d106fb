import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentEnv, type AgentEnv } from './agent-harness.js';
import { processConfig, startFactory } from './process-harness.js';
import { tempDir, waitFor } from './helpers.js';

describe('agent memory in tasks', () => {
  let env: AgentEnv;
  beforeAll(async () => {
    env = await createAgentEnv();
  });
  afterAll(async () => {
    await env.stopAll();
  });

  it('recalls relevant memories into the prompt and stores what the run learned', async () => {
    const memory = env.wired!.memory;
    await memory.add({
      repo: 'acme/web',
      task_id: null,
      agent_type: 'coder',
      kind: 'gotcha',
      title: 'Use npm ci for the test suite',
      content: 'npm install rewrites the lockfile and the suite fails; run npm ci first.',
    });
    for (let i = 0; i < 20; i++)
      await memory.add({
        repo: 'acme/web',
        task_id: null,
        agent_type: 'coder',
        kind: 'learning',
        title: `Decoy ${i}`,
        content: `Colour palette number ${i} lives in theme.css`,
      });
    const t = await env.createTask({
      title: 'Fix the failing test suite',
      description: 'The suite fails after npm install [fake:success learn=Migrations_live_in_db/migrations]',
    });
    const done = await env.waitStatus(t.id, ['in_review', 'failed']);
    expect(done.status).toBe('in_review');
    const prompt = env.fakeLog().find((r) => r.env.FACTORY_TASK_ID === String(t.id))!.prompt;
    expect(prompt).toContain('Relevant memories from earlier tasks');
    expect(prompt).toContain('Use npm ci for the test suite');
    expect(prompt).not.toContain('Decoy 7');
    const stored = await waitFor(
      async () => {
        const r = (await env.app.inject({ url: '/api/memory?repo=acme/web&q=migrations' })).json();
        // Stored through the outbox, after the run: the outcome (which may quote the learning) can come first.
        return r.memories.find(
          (m: { kind: string; content: string }) => m.kind === 'learning' && m.content.includes('Migrations live in db/migrations'),
        );
      },
      { what: 'learning stored' },
    );
    expect(stored).toMatchObject({ kind: 'learning', task_id: t.id, repo: 'acme/web' });
    const outcome = (await env.app.inject({ url: '/api/memory?repo=acme/web&q=failing test suite' })).json().memories;
    expect(outcome.some((m: { kind: string; task_id: number }) => m.kind === 'outcome' && m.task_id === t.id)).toBe(true);
  });

  it('looks up and forgets memories through the API', async () => {
    const list = (await env.app.inject({ url: '/api/memory?repo=acme/web&limit=5' })).json();
    expect(list.memories.length).toBe(5);
    expect(list.health.status).toBe('ok');
    const id = list.memories[0].id;
    expect((await env.app.inject({ method: 'DELETE', url: `/api/memory/${id}` })).statusCode).toBe(200);
    expect((await env.app.inject({ method: 'DELETE', url: `/api/memory/${id}` })).statusCode).toBe(404);
    expect((await env.app.inject({ method: 'DELETE', url: '/api/memory/x;DROP' })).statusCode).toBe(400);
    expect((await env.app.inject({ url: '/api/memory?limit=0' })).statusCode).toBe(400);
    expect((await env.app.inject({ url: '/health' })).json().memory).toMatchObject({ status: 'ok' });
  });
});

describe('the service as a process', () => {
  it('serves /health, keeps memories in data/ across a restart, and exits cleanly on SIGTERM', async () => {
    const dir = tempDir();
    // Debug logging and secrets in the environment: none of the secrets may reach the log output.
    const config = processConfig(dir, { log_level: 'debug' });
    // (Only secrets whose services stay unconfigured or point at loopback: no test talks to the internet.)
    const secrets = {
      GITHUB_TOKEN: 'ghp_SECRETVALUE_0123456789',
      PLANE_API_KEY: 'plane_api_SECRET_0123',
      PLANE_WEBHOOK_SECRET: 'SECRET-plane-hook',
      SURREALDB_PASS: 'SECRET-surreal-pass',
    };
    const first = await startFactory(dir, config, secrets);
    try {
      expect((await first.api('GET', '/health')).json).toMatchObject({ status: 'ok', db: 'ok' });
      const created = await first.api('POST', '/api/tasks?auto_run=true', {
        title: 'Research caching',
        description: '[fake:noop learn=Redis_is_already_a_dependency]',
        repo: 'acme/web',
        agent_type: 'researcher',
      });
      expect(created.status).toBe(201);
      const final = await first.taskEnded(created.json.id, ['done', 'failed', 'in_review']);
      expect(final.error).toBe('');
      expect(final.status).toBe('done');
      await waitFor(async () => (await first.api('GET', '/api/memory?q=redis')).json.memories.length > 0, { what: 'memory stored' });
    } finally {
      first.child.kill('SIGTERM');
    }
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain('stopped');
    for (const v of Object.values(secrets)) expect(first.output()).not.toContain(v);
    const second = await startFactory(dir, config);
    try {
      const found = (await second.api('GET', '/api/memory?q=redis')).json.memories;
      expect(found.some((m: { content: string }) => m.content.includes('Redis is already a dependency'))).toBe(true);
    } finally {
      second.child.kill('SIGTERM');
    }
    expect(await second.exited).toBe(0);
  });
});
