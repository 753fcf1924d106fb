// Builds the message board capability (issue 6): outbox + Telegram, board service, SSE hub, routes.
import type { Services } from '../services.js';
import type { RoutePlugin } from '../server/app.js';
import { MessagesRepo } from '../db/repositories/messages.js';
import { OutboxRepo } from '../db/repositories/outbox.js';
import { OutboxWorker, type OutboxOptions } from '../integrations/outbox.js';
import { TelegramNotifier } from '../integrations/telegram.js';
import { messageRoutes } from '../server/routes/messages.js';
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
  routes: RoutePlugin[];
}

/**
 * Constructs the board and its delivery machinery, registers /health parts and stop hooks, and starts
 * the outbox worker (cheap and idempotent; rows left from a previous run are delivered now).
 * Stop order (hooks run in reverse): the SSE hub closes its streams, then the outbox finishes or
 * aborts in-flight deliveries, before services.stop() closes the database.
 */
/** The durable delivery queue; wire.ts builds it first because the executor queues deferred PRs in it. */
export function createOutbox(services: Services, opts: OutboxOptions = {}): OutboxWorker {
  return new OutboxWorker(new OutboxRepo(services.db), services.logger.child({ component: 'outbox' }), opts);
}

export function createBoard(services: Services, opts: BoardOptions = {}, outbox = createOutbox(services, opts.outbox)): Board {
  const { config, logger, db, bus, stream } = services;
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
  const sse = new SseHub(services.repos.events, bus, logger.child({ component: 'sse' }), opts.sse);

  services.addHealth('outbox', () => outbox.health());
  services.addHealth('sse', () => ({ clients: sse.clientCount, dropped_slow: sse.stats.dropped_slow }));
  services.onStop(() => outbox.stop());
  services.onStop(() => sse.stop());
  // Deliveries are one-per-installation work: the api (or all) process sends what any process queued.
  if (services.runsSingletons) {
    outbox.start();
    bus.on('outbox.wake', () => outbox.notify());
  }

  return { board, messages, outbox, telegram, sse, routes: [messageRoutes({ board, messages, sse })] };
}
