// The event-loop watchdog notices a blocked loop and reports its delay on /health.
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { LoopMonitor } from '../src/health/loop-monitor.js';
import { createTestEnv, gatedExecutor, waitFor } from './helpers.js';

describe('event-loop monitor', () => {
  it('logs a blocked turn and shows the delay', async () => {
    const lines: string[] = [];
    const logger = pino(
      { level: 'warn' },
      new Writable({
        write(c, _e, cb) {
          lines.push(String(c));
          cb();
        },
      }),
    );
    const monitor = new LoopMonitor(logger, 200);
    monitor.start();
    try {
      await waitFor(() => monitor.health() !== null, { what: 'the first loop samples' });
      const until = Date.now() + 400;
      while (Date.now() < until) {
        /* a synchronous block, on purpose */
      }
      await waitFor(() => lines.some((l) => l.includes('event loop blocked')), { what: 'the warning' });
      const h = monitor.health()!;
      expect(h.max_ms).toBeGreaterThanOrEqual(300);
      expect(h.blocked_turns).toBeGreaterThanOrEqual(1);
      expect(JSON.parse(lines.find((l) => l.includes('event loop blocked'))!).blocked_ms).toBeGreaterThan(200);
    } finally {
      monitor.stop();
    }
  });

  it('is on /health', async () => {
    const env = await createTestEnv({ executor: gatedExecutor().executor });
    try {
      const h = await waitFor(async () => (await env.app.inject({ url: '/health' })).json().event_loop, { what: 'event_loop on /health' });
      expect(h.p99_ms).toBeGreaterThanOrEqual(0);
      expect(h).toHaveProperty('max_ms');
    } finally {
      await env.close();
    }
  });
});
