// Builds the message board capability: outbox + Telegram, board service, SSE hub (its routes are
// server/routes/messages.ts, mounted by the composition root).
import type { Core } from '../composition/core.js';
import { MessagesRepo } from '../db/repositories/messages.js';
import { OutboxRepo } from '../db/repositories/outbox.js';
import { OutboxWorker, type OutboxOptions } from '../integrations/outbox.js';
import { TelegramNotifier } from '../integrations/telegram.js';
import { BoardService } from './service.js';
import { SseHub, type SseOptions } from './sse.js';

export interface BoardOptions {
  /** Retry timing etc. (tests shorten the backoff). */
  outbox?: OutboxOptions;
  /** Heartbeat interval, buffer limits (tests shorten the heartbeat). */
  sse?: SseOptions;
  /** Telegram per-request timeout, ms. */
  telegramTimeoutMs?: number;
}

export interface Board {
  board: BoardService;
  messages: MessagesRepo;
  outbox: OutboxWorker;
  telegram: TelegramNotifier;
  sse: SseHub;
}

/** The durable delivery queue; the root builds it first because the PR publisher queues deferred PRs in it. */
export function createOutbox(core: Pick<Core, 'db' | 'logger'>, opts: OutboxOptions = {}): OutboxWorker {
  return new OutboxWorker(new OutboxRepo(core.db), core.logger.child({ component: 'outbox' }), opts);
}

/**
 * Constructs the board and its delivery machinery, registers its /health fields and stop parts, and
 * starts the outbox worker (cheap and idempotent; rows left from a previous run are delivered now).
 * Stop order (parts stop in reverse): the SSE hub closes its streams, then the outbox finishes or
 * aborts in-flight deliveries, before the database closes.
 */
export function createBoard(core: Core, opts: BoardOptions = {}, outbox = createOutbox(core, opts.outbox)): Board {
  const { config, logger, db, bus, stream, lifecycle } = core;
  const messages = new MessagesRepo(db);
  const telegram = new TelegramNotifier(
    {
      token: config.secrets.telegramBotToken || config.telegram.bot_token,
      chatId: config.telegram.chat_id,
      apiRoot: config.telegram.api_root,
      timeoutMs: opts.telegramTimeoutMs,
    },
    outbox,
    logger.child({ component: 'telegram' }),
  );
  const board = new BoardService({ config, logger: logger.child({ component: 'board' }), messages, stream, telegram });
  const sse = new SseHub(core.repos.events, bus, logger.child({ component: 'sse' }), opts.sse);

  lifecycle.health('outbox', () => outbox.health());
  lifecycle.health('sse', () => ({ clients: sse.clientCount, dropped_slow: sse.stats.dropped_slow }));
  lifecycle.add({ stop: () => outbox.stop() });
  lifecycle.add({ stop: () => sse.stop() });
  // What a running agent posts (a protocol "message") lands on the board.
  bus.on('agent.message', async ({ task, message }) => {
    await board.postFromAgent(task, message);
  });
  // Deliveries are one-per-installation work: the api (or all) process sends what any process queued.
  if (core.runsSingletons) {
    outbox.start();
    bus.on('outbox.wake', () => outbox.notify());
  }

  return { board, messages, outbox, telegram, sse };
}
