import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppServices as Services } from '../services.js';
import type { ClarificationService } from '../../orchestrator/clarify.js';
import { parseInput } from '../validation.js';
import { idParams } from './tasks.js';
import { taskJson } from '../serialize.js';

const text = z
  .string({ error: 'is required and must be a string' })
  .min(1, 'must not be empty')
  .max(20_000, 'must be at most 20000 characters');

/** Both the upstream route (/resume with `response`) and ours (/answer with `answer` or `response`). */
export function clarifyRoutes(clarify: ClarificationService) {
  return async (app: FastifyInstance, _s: Services): Promise<void> => {
    app.post('/api/tasks/:id/resume', async (req) => {
      const { id } = parseInput(idParams, req.params, 'params');
      const b = parseInput(z.object({ response: text }), req.body, 'body');
      return taskJson(await clarify.answer(id, b.response, 'api'));
    });
    app.post('/api/tasks/:id/answer', async (req) => {
      const { id } = parseInput(idParams, req.params, 'params');
      const b = parseInput(
        z
          .object({ answer: text.optional(), response: text.optional() })
          .refine((v) => v.answer !== undefined || v.response !== undefined, { message: 'is required', path: ['answer'] }),
        req.body,
        'body',
      );
      return taskJson(await clarify.answer(id, (b.answer ?? b.response)!, 'api'));
    });
  };
}
