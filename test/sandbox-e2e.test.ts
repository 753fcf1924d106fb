// A whole task with its agent in the sandbox: it runs, its commit becomes a PR, /health says so.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentEnv, gitOut, type AgentEnv } from './agent-harness.js';
import { probeSandbox } from '../src/agents/sandbox/index.js';

const usable = (await probeSandbox()) === null;

describe.skipIf(!usable && process.env.FACTORY_CI_SANDBOX !== '1')('a task with a sandboxed agent', () => {
  let env: AgentEnv;
  beforeAll(async () => {
    env = await createAgentEnv({ sandbox: true });
  });
  afterAll(async () => {
    await env?.stopAll();
  });

  it('runs sandboxed end to end and says so on /health', async () => {
    const health = (await env.app.inject({ url: '/health' })).json();
    expect(health.sandbox).toMatchObject({ mode: 'on', sandboxed: true });
    const t = await env.createTask({ title: 'Sandboxed change', description: 'Say hello [fake:success]' });
    const done = await env.waitStatus(t.id, ['in_review', 'failed']);
    expect(done.error).toBe('');
    expect(done.status).toBe('in_review');
    const call = env.fakeLog().find((r) => r.env.FACTORY_TASK_ID === String(t.id))!;
    expect(call.env.FACTORY_SANDBOX).toBe('bwrap');
    const logs = (await env.app.inject({ url: `/api/tasks/${t.id}/logs?limit=1000` })).json().logs as Array<{ message: string }>;
    expect(logs.some((l) => l.message.includes(', sandboxed)'))).toBe(true);
    const files = gitOut(path.join(env.origins, 'acme', 'web.git'), 'ls-tree', '--name-only', done.branch_name);
    expect(files.split('\n')).toContain('FAKE_CHANGE.md');
  });
});
