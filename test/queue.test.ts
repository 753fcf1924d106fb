import { describe, expect, it } from 'vitest';
import { createTestEnv, gatedExecutor, tempDir, waitFor } from './helpers.js';

// One after another: creation order is the queue order the tests check.
const mk = async (env: Awaited<ReturnType<typeof createTestEnv>>, n: number, run = true) => {
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push((await env.services.tasks.create({ title: `t${i}`, repo: 'acme/web', run })).id);
  return ids;
};

describe('durable queue', () => {
  it('never runs more than max_concurrent_agents at once, in FIFO order', async () => {
    const gate = gatedExecutor();
    const env = await createTestEnv({ executor: gate.executor, overrides: { max_concurrent_agents: 3 } });
    try {
      const ids = await mk(env, 20);
      env.services.running.notify();
      // Release tasks one at a time as they start; the limit must hold throughout.
      for (let done = 0; done < 20; done++) {
        await waitFor(() => gate.started.length > done, { what: `start #${done}` });
        expect(gate.concurrent).toBeLessThanOrEqual(3);
        const id = gate.started[done]!;
        await waitFor(() => gate.isWaiting(id));
        gate.release(id);
      }
      await waitFor(async () => (await env.services.repos.tasks.byStatus('done')).length === 20, { what: 'all done' });
      expect(gate.maxSeen).toBe(3);
      expect(gate.started).toEqual(ids);
    } finally {
      gate.releaseAll();
      await env.close();
    }
  });

  it('runs strictly in the order tasks were asked to run', async () => {
    const gate = gatedExecutor();
    const env = await createTestEnv({ executor: gate.executor, overrides: { max_concurrent_agents: 1 } });
    try {
      const ids = await mk(env, 4, false);
      for (const id of [ids[2]!, ids[0]!, ids[3]!, ids[1]!]) {
        await env.services.repos.tasks.requestRun(id);
        await new Promise((r) => setTimeout(r, 2)); // distinct run_requested_at stamps
      }
      env.services.running.notify();
      for (let i = 0; i < 4; i++) {
        await waitFor(() => gate.started.length > i);
        gate.release(gate.started[i]!);
      }
      expect(gate.started).toEqual([ids[2], ids[0], ids[3], ids[1]]);
    } finally {
      gate.releaseAll();
      await env.close();
    }
  });

  it('a claim is atomic: a second claimer gets nothing for the same task', async () => {
    const gate = gatedExecutor();
    const env = await createTestEnv({ executor: gate.executor, start: false });
    try {
      const [id] = await mk(env, 1);
      const a = await env.services.repos.queue.claimNext('worker-a', 60_000);
      const b = await env.services.repos.queue.claimNext('worker-b', 60_000);
      expect(a?.id).toBe(id);
      expect(a?.attempts).toBe(1);
      expect(b).toBeUndefined();
    } finally {
      await env.close();
    }
  });

  it('recovers a task interrupted by a crash and runs it again on the same data', async () => {
    const dir = tempDir();
    const gate = gatedExecutor();
    const first = await createTestEnv({ dir, executor: gate.executor });
    const [id] = await mk(first, 1);
    first.services.running.notify();
    await waitFor(() => gate.isWaiting(id!), { what: 'first run' });
    // Simulated crash: the process vanishes without its shutdown path.
    await first.services.db.close();
    await first.app.close();

    const gate2 = gatedExecutor();
    const second = await createTestEnv({ dir, executor: gate2.executor });
    try {
      await waitFor(() => gate2.isWaiting(id!), { what: 'resumed run' });
      const t = (await second.services.tasks.get(id!))!;
      expect(t.status).toBe('in_progress');
      expect(t.attempts).toBe(2);
      const runs = await second.services.repos.runs.forTask(id!);
      expect(runs.every((r) => r.ended_at !== null || r.outcome === 'running')).toBe(true);
      gate2.release(id!);
      await waitFor(async () => (await second.services.tasks.get(id!))!.status === 'done');
    } finally {
      gate.releaseAll();
      gate2.releaseAll();
      await second.close();
    }
  });

  it('fails an interrupted task after max attempts with a clear error', async () => {
    const dir = tempDir();
    const env = await createTestEnv({ dir, executor: gatedExecutor().executor, start: false, overrides: { queue: { max_attempts: 2 } } });
    const [id] = await mk(env, 1);
    // Two claims by processes that died.
    await env.services.repos.queue.claimNext('dead-1', 1);
    await env.services.repos.tasks.transition(id!, ['in_progress'], 'queued', { lease_owner: null });
    await env.services.repos.queue.claimNext('dead-2', 1);
    await env.services.scheduler.recover();
    const t = (await env.services.tasks.get(id!))!;
    expect(t.status).toBe('failed');
    expect(t.error).toMatch(/Gave up after 2 attempts/);
    await env.close();
  });

  it('graceful stop hands running work back to the queue without counting the attempt', async () => {
    const dir = tempDir();
    const gate = gatedExecutor();
    const env = await createTestEnv({ dir, executor: gate.executor, overrides: { shutdown: { grace_seconds: 0 } } });
    const [id] = await mk(env, 1);
    env.services.running.notify();
    await waitFor(() => gate.isWaiting(id!));
    await env.close();
    const again = await createTestEnv({ dir, executor: gatedExecutor().executor, start: false });
    const t = (await again.services.tasks.get(id!))!;
    expect(t.status).toBe('queued');
    expect(t.attempts).toBe(0);
    expect(t.run_requested_at).not.toBeNull();
    await again.close();
  });

  it('an executor that throws fails the task with its message', async () => {
    const env = await createTestEnv({
      executor: async () => {
        throw new Error('boom');
      },
    });
    try {
      const [id] = await mk(env, 1);
      env.services.running.notify();
      const t = await waitFor(async () => {
        const r = (await env.services.tasks.get(id!))!;
        return r.status === 'failed' ? r : undefined;
      });
      expect(t.error).toBe('boom');
      expect(t.completed_at).not.toBeNull();
    } finally {
      await env.close();
    }
  });
});
