// What a run learns must survive a memory store that is down when the run ends: it waits in the
// outbox and is stored once each when the store answers again. A remote that was down at boot is
// tried again later instead of leaving memory off until a restart.
import { createServer as createTcpServer, type Socket } from 'node:net';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { openDb } from '../src/db/connection.js';
import { OutboxRepo } from '../src/db/repositories/outbox.js';
import { OutboxWorker } from '../src/integrations/outbox.js';
import { createSurrealMemory, type MemoryStore } from '../src/memory/index.js';
import { attachMemory, MEMORY_CHANNEL } from '../src/memory/wiring.js';
import type { RunReport } from '../src/orchestrator/types.js';
import { tempDir, waitFor } from './helpers.js';

const quiet = pino({ level: 'silent' });
const NS = { namespace: 'factory', database: 'memory' };

/** A real embedded store whose writes fail (as a hanging or refused server's do) while `down` is set. */
function switchable(store: MemoryStore): MemoryStore & { down: boolean; addCalls: number } {
  const s = {
    init: () => store.init(),
    recall: (q: Parameters<MemoryStore['recall']>[0]) => store.recall(q),
    search: (q: Parameters<MemoryStore['search']>[0]) => store.search(q),
    forget: (id: string) => store.forget(id),
    health: () => store.health(),
    close: () => store.close(),
    down: false,
    addCalls: 0,
    add: async (m: Parameters<MemoryStore['add']>[0]) => {
      s.addCalls += 1;
      return s.down ? null : store.add(m);
    },
  };
  return s;
}

function report(taskId: number, runId: number, learnings: string[]): RunReport {
  return {
    task: { id: taskId, repo: 'acme/web', agent_type: 'coder', title: `Task ${taskId}` },
    run: { error: '' },
    runId,
    protocol: [],
    handoff: undefined,
    learnings,
    finalText: 'done',
    changedFiles: [],
    status: 'in_review',
  } as unknown as RunReport;
}

describe('memory writes go through the outbox', () => {
  it('stores what runs learned during an outage once each after it, in order', async () => {
    const db = await openDb(`${tempDir()}/factory.db`);
    const outbox = new OutboxWorker(new OutboxRepo(db), quiet, { baseDelayMs: 50, maxDelayMs: 200 });
    const real = createSurrealMemory({ url: 'mem://', ...NS, dataDir: tempDir(), logger: quiet });
    await real.init();
    const memory = switchable(real);
    // The run reports are handed to the recorders attachMemory returns, as the executor would.
    const { recorders } = attachMemory({ memory, outbox, maxPromptChars: 4000, logger: quiet });
    const hooks = {
      finishRun: async (r: RunReport) => {
        for (const record of recorders) await record(r);
      },
    };
    outbox.start();
    try {
      memory.down = true;
      await hooks.finishRun(report(1, 11, ['The zebra suite needs NODE_ENV=test']));
      await hooks.finishRun(report(2, 12, []));
      await waitFor(() => memory.addCalls >= 3, { what: 'failed store attempts during the outage' });
      expect(await real.search({ repo: 'acme/web' })).toEqual([]);
      expect(await outbox.pending(MEMORY_CHANNEL)).toBe(3);
      // The same run reported twice (a listener retried) queues nothing new.
      await hooks.finishRun(report(1, 11, ['The zebra suite needs NODE_ENV=test']));
      expect(await outbox.pending(MEMORY_CHANNEL)).toBe(3);

      memory.down = false;
      await waitFor(async () => (await outbox.pending(MEMORY_CHANNEL)) === 0, { what: 'the queued memories stored' });
      const stored = await real.search({ repo: 'acme/web', limit: 50 });
      expect(stored.map((m) => [m.task_id, m.kind]).sort()).toEqual([
        [1, 'learning'],
        [1, 'outcome'],
        [2, 'outcome'],
      ]);
      expect(stored.find((m) => m.kind === 'learning')!.content).toBe('The zebra suite needs NODE_ENV=test');
    } finally {
      await outbox.stop();
      await real.close();
      await db.close();
    }
  });
});

describe('memory store reconnects', () => {
  it('tries a remote that was unreachable at boot again, with a growing pause', async () => {
    let connections = 0;
    const sockets = new Set<Socket>();
    // Accepts and drops every connection: the client sees a server that is there but not working.
    const tcp = createTcpServer((s) => {
      connections += 1;
      sockets.add(s);
      s.destroy();
    });
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const { port } = tcp.address() as { port: number };
    const store = createSurrealMemory({
      url: `http://127.0.0.1:${port}`,
      ...NS,
      dataDir: tempDir(),
      connectTimeoutMs: 500,
      reconnectBaseMs: 1000,
      logger: quiet,
    });
    try {
      await store.init();
      expect(store.health().status).toBe('degraded');
      const afterBoot = connections;
      expect(afterBoot).toBeGreaterThanOrEqual(1);
      // Within the pause no call reconnects, however many there are.
      for (let i = 0; i < 5; i++) await store.recall({ repo: 'r', text: 'x' });
      expect(connections).toBe(afterBoot);
      // After it, the next call tries again.
      await waitFor(
        async () => {
          await store.search({ q: 'zebra' });
          return connections > afterBoot;
        },
        { what: 'a reconnect attempt', timeoutMs: 8000 },
      );
      expect(store.health().status).toBe('degraded');
    } finally {
      await store.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => tcp.close(resolve));
    }
  });
});
