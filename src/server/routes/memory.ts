import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppServices as Services } from '../services.js';
import type { MemoryStore } from '../../memory/types.js';
import { notFound } from '../../errors.js';
import { HttpError } from '../http-error.js';
import { parseInput } from '../validation.js';

export function memoryRoutes(memory: MemoryStore) {
  return async (app: FastifyInstance, _s: Services): Promise<void> => {
    app.get('/api/memory', async (req) => {
      const q = parseInput(
        z.object({
          repo: z.string().max(200).optional(),
          q: z.string().max(2000).optional(),
          limit: z.coerce
            .number({ error: 'must be an integer' })
            .int('must be an integer')
            .min(1, 'must be between 1 and 200')
            .max(200, 'must be between 1 and 200')
            .default(20),
        }),
        req.query,
        'query',
      );
      const h = memory.health();
      if (h.status === 'disabled') throw new HttpError(503, 'memory_disabled', 'agent memory is disabled (memory.enabled: false)');
      return { memories: await memory.search(q), health: h };
    });
    app.delete('/api/memory/:id', async (req) => {
      const { id } = parseInput(
        z.object({ id: z.string().regex(/^(memory:)?[A-Za-z0-9_]{1,64}$/, 'must be a memory id such as memory:abc123') }),
        req.params,
        'params',
      );
      if (!(await memory.forget(id))) throw notFound('Memory');
      return { deleted: id };
    });
  };
}
