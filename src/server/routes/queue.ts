import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppServices as Services } from '../services.js';
import type { QueueControl } from '../../queue/control.js';
import { HttpError } from '../http-error.js';
import { parseInput } from '../validation.js';

const isoTime = z.string().refine((v) => !Number.isNaN(Date.parse(v)), 'must be an ISO-8601 time');

export function queueRoutes(control: QueueControl) {
  return async (app: FastifyInstance, s: Services): Promise<void> => {
    const state = async () => ({ ...(await control.state()), running: s.running.count(), ...(await s.status.counts()) });

    app.get('/api/queue', async () => state());
    app.post('/api/queue/pause', async (req) => {
      const b = parseInput(
        z.object({
          until: isoTime.optional(),
          minutes: z
            .number()
            .positive()
            .max(7 * 24 * 60)
            .optional(),
          reason: z.string().max(500).default('paused by operator'),
        }),
        req.body ?? {},
        'body',
      );
      if (b.until && b.minutes) throw new HttpError(400, 'invalid_input', 'until: give either until or minutes, not both', 'until');
      const until = b.until ? new Date(b.until) : b.minutes ? new Date(Date.now() + b.minutes * 60_000) : null;
      if (until && until.getTime() <= Date.now()) throw new HttpError(400, 'invalid_input', 'until: must be in the future', 'until');
      await control.pause(until, b.reason, 'operator');
      return await state();
    });
    app.post('/api/queue/resume', async () => {
      await control.resume('operator');
      s.running.notify();
      return await state();
    });

    app.get('/api/stats', async (req) => {
      const q = parseInput(z.object({ since: isoTime.optional() }), req.query, 'query');
      const since = q.since ? new Date(q.since).toISOString() : new Date(Date.now() - 30 * 86_400_000).toISOString();
      return { since, ...(await s.status.statsSince(since)) };
    });
  };
}
