// Message board routes: REST, the live SSE stream, and the /messages page with its static assets.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { BoardService } from '../../board/service.js';
import type { SseHub, StreamFilter } from '../../board/sse.js';
import { MESSAGE_TYPES, messageJson, type MessagesRepo } from '../../db/repositories/messages.js';
import { notFound } from '../../errors.js';
import type { RoutePlugin } from '../app.js';
import { parseInput } from '../validation.js';
import { ensureStatic, sendPage } from '../html.js';
import { idParams } from './tasks.js';
import { PUBLIC_ROUTE } from '../auth.js';

const typeError = { error: `must be one of ${MESSAGE_TYPES.join(', ')}` };
// An empty query value (`?task_id=` from a form) means "not set", not "0".
const blank = (v: unknown) => (v === '' ? undefined : v);
const queryId = z.preprocess(
  blank,
  z.coerce
    .number({ error: 'must be a positive integer' })
    .int('must be a positive integer')
    .positive('must be a positive integer')
    .max(Number.MAX_SAFE_INTEGER)
    .optional(),
);
const bodyId = z
  .number({ error: 'must be a positive integer or null' })
  .int('must be a positive integer')
  .positive('must be a positive integer')
  .max(Number.MAX_SAFE_INTEGER)
  .nullable()
  .default(null);
const name = z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');
const isoTime = z.preprocess(
  blank,
  z
    .string()
    .max(64)
    .refine((v) => !Number.isNaN(Date.parse(v)), 'must be an ISO-8601 time')
    .transform((v) => new Date(v).toISOString())
    .optional(),
);

export const postMessageBody = z.object({
  sender: z
    .string({ error: 'is required and must be a string' })
    .trim()
    .min(1, 'must not be empty')
    .max(200, 'must be at most 200 characters'),
  // Emptiness and size are checked by BoardService (400 / 413), the same rules as for agents.
  message: z.string({ error: 'is required and must be a string' }),
  recipient: z.string({ error: 'must be a string or null' }).max(200, 'must be at most 200 characters').nullable().default(null),
  task_id: bodyId,
  workflow_id: bodyId,
  message_type: z.enum(MESSAGE_TYPES, typeError).default('info'),
  reply_to: bodyId,
});

export const listMessagesQuery = z.object({
  task_id: queryId,
  workflow_id: queryId,
  // Validated, unlike upstream where an unknown type silently returned [].
  message_type: z.preprocess(blank, z.enum(MESSAGE_TYPES, typeError).optional()),
  sender: z.preprocess(blank, name.optional()),
  from: z.preprocess(blank, name.optional()),
  recipient: z.preprocess(blank, name.optional()),
  to: z.preprocess(blank, name.optional()),
  search: z.preprocess(blank, z.string().max(500, 'must be at most 500 characters').optional()),
  since: isoTime,
  before: isoTime,
  before_id: queryId,
  after_id: queryId,
  limit: z.preprocess(
    blank,
    z.coerce
      .number({ error: 'must be an integer' })
      .int('must be an integer')
      .min(1, 'must be between 1 and 500')
      .max(500, 'must be between 1 and 500')
      .default(100),
  ),
  offset: z.preprocess(
    blank,
    z.coerce.number({ error: 'must be an integer' }).int('must be an integer').min(0, 'must be 0 or more').default(0),
  ),
});

const streamQuery = z.object({
  task_id: queryId,
  // Comma-separated event kinds (message, task_status, ...); `type` is accepted as an alias.
  types: z.preprocess(
    blank,
    z
      .string()
      .max(500)
      .regex(/^[a-z_.,\s]+$/, 'must be a comma-separated list of event kinds')
      .optional(),
  ),
  type: z.preprocess(
    blank,
    z
      .string()
      .max(500)
      .regex(/^[a-z_.,\s]+$/, 'must be a comma-separated list of event kinds')
      .optional(),
  ),
  message_type: z.preprocess(blank, z.enum(MESSAGE_TYPES, typeError).optional()),
  // For clients that cannot set headers; the Last-Event-ID header wins.
  last_event_id: z.preprocess(
    blank,
    z.coerce.number({ error: 'must be an integer' }).int('must be an integer').min(0, 'must be 0 or more').optional(),
  ),
});

export interface MessageRouteDeps {
  board: BoardService;
  messages: MessagesRepo;
  sse: SseHub;
}

/** Builds the route plugin for the message board (it needs the board objects, not only Services). */
export function messageRoutes(deps: MessageRouteDeps): RoutePlugin {
  const { board, messages, sse } = deps;

  // Event stream; `defaultTypes` applies when the client names none (messages only on the upstream path).
  const stream = (defaultTypes: string[] | undefined) => async (req: FastifyRequest, reply: FastifyReply) => {
    const q = parseInput(streamQuery, req.query, 'query');
    const list = (q.types ?? q.type)
      ?.split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    const types = list && list.length ? list : defaultTypes;
    const filter: StreamFilter = { types: types ? new Set(types) : undefined, taskId: q.task_id, messageType: q.message_type };
    const header = req.headers['last-event-id'];
    const fromHeader = typeof header === 'string' && /^\d{1,15}$/.test(header.trim()) ? Number(header.trim()) : undefined;
    await sse.open(req, reply, filter, fromHeader ?? q.last_event_id);
  };

  return async (app) => {
    // Another plugin (the dashboard) may already serve /static/; the files live in the same folder.
    await ensureStatic(app);
    // Fastify waits for open connections when closing; end the streams first.
    app.addHook('preClose', async () => sse.closeAll());

    app.post('/api/messages', async (req, reply) => {
      const body = parseInput(postMessageBody, req.body, 'body');
      return reply.status(201).send(await board.post(body));
    });

    app.get('/api/messages', async (req) => {
      const q = parseInput(listMessagesQuery, req.query, 'query');
      const { from, to, ...rest } = q;
      return (await messages.list({ ...rest, sender: q.sender ?? from, recipient: q.recipient ?? to })).map(messageJson);
    });

    app.get('/api/messages/stream/sse', stream(['message']));
    app.get('/api/events/stream', stream(undefined));

    app.get('/api/messages/:id', async (req) => {
      const { id } = parseInput(idParams, req.params, 'params');
      const m = await messages.get(id);
      if (!m) throw notFound('Message');
      return messageJson(m);
    });

    app.get('/api/messages/:id/thread', async (req) => {
      const { id } = parseInput(idParams, req.params, 'params');
      const rows = await messages.thread(id);
      if (rows.length === 0) throw notFound('Message');
      return rows.map(messageJson);
    });

    app.get('/messages', PUBLIC_ROUTE, async (_req, reply) => sendPage(reply, 'messages.html'));
  };
}
