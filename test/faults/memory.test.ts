// Agent memory's outside services misbehaving while tasks run: the embeddings API accepting requests
// and never answering, and a remote SurrealDB that never answers. Memory degrades (full-text recall,
// or none) and says so in /health; tasks neither wait on it for long nor fail because of it.
import { afterEach, describe, expect, it } from 'vitest';
import { FakeOpenAI, FakeServer } from '../fakes/http/index.js';
import { waitFor } from '../helpers.js';
import {
  expectResponsive,
  expectStandardOutcome,
  readDb,
  startFaultFactory,
  startHealthProbe,
  startStandardTasks,
  type FaultFactory,
} from './harness.js';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

type Health = { memory: { status: string; error?: string } };

async function runWithMemoryFault(f: FaultFactory, on: () => void, degraded: RegExp): Promise<void> {
  const probe = await startHealthProbe(f.url);
  on();
  const tasks = await startStandardTasks(f);
  await expectStandardOutcome(f, tasks);
  const h = (await f.api('GET', '/health')).json as Health;
  expect(h.memory.status).toBe('degraded');
  expect(h.memory.error).toMatch(degraded);
  expectResponsive(await probe.stop());
  expect(f.github.pulls.size).toBe(1);
}

describe('fault: agent memory', () => {
  it('the embeddings API accepts and never answers', async () => {
    const openai = new FakeOpenAI({ apiKey: 'sk-fake-faults' });
    const url = await openai.start();
    cleanup.push(() => openai.stop());
    const f = await startFaultFactory(
      { memory: { enabled: true, openai_base_url: `${url}/v1`, embedding_model: 'fake-embed' } },
      { OPENAI_API_KEY: 'sk-fake-faults' },
    );
    cleanup.push(() => f.stop());
    await runWithMemoryFault(f, () => openai.setHanging(true), /embeddings unavailable/);
    // The embedder was asked and then left alone for a while, not once per call with a timeout each.
    const asked = openai.requests.filter((r) => r.failed).length;
    expect(asked).toBeGreaterThanOrEqual(1);
    // Two tasks recalled at once (the SDK tries each twice); later calls found the embedder paused.
    expect(asked).toBeLessThanOrEqual(4);
    openai.setHanging(false);
    // What the runs learned was stored (full-text searchable) once per task, despite the outage.
    const outcomes = await waitFor(
      async () => {
        const m = (
          (await f.api('GET', '/api/memory?repo=acme/web&limit=50')).json as { memories: Array<{ kind: string; task_id: number }> }
        ).memories.filter((x) => x.kind === 'outcome');
        return m.length >= 2 ? m : undefined;
      },
      { what: 'outcome memories of both tasks' },
    );
    expect(outcomes.map((m) => m.task_id).sort()).toEqual([1, 2]);
  });

  it('a remote SurrealDB that accepts and never answers', async () => {
    const surreal = new FakeServer();
    const url = await surreal.start();
    surreal.setHanging(true);
    cleanup.push(() => surreal.stop());
    const f = await startFaultFactory({ memory: { enabled: true } }, { SURREALDB_URL: url });
    cleanup.push(() => f.stop());
    await runWithMemoryFault(f, () => {}, /./);
    expect(surreal.heldCount + surreal.requests.length).toBeGreaterThanOrEqual(1);
    // What the runs learned is not dropped: it waits in the outbox for the store to answer.
    const waiting = await waitFor(
      () => {
        const n = readDb(
          f,
          (db) =>
            (db.prepare("SELECT COUNT(*) AS n FROM outbox WHERE channel = 'memory' AND delivered_at IS NULL").get() as { n: number }).n,
        );
        return n >= 2 ? n : undefined;
      },
      { what: 'the outcome memories of both tasks queued' },
    );
    expect(waiting).toBe(2);
  });
});
