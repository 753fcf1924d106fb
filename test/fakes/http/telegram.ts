// Fake Telegram Bot API (`/bot<token>/<method>`): sendMessage recording, long-polled getUpdates, pushReply.
import { FakeServer, pollUntil, type FakeServerOptions, type Reply, type RouteRequest } from './base.js';

export interface TelegramUser {
  id: number;
  is_bot?: boolean;
  first_name?: string;
  username?: string;
}

export interface SentMessage {
  message_id: number;
  chat_id: number | string;
  text: string;
  parse_mode: string | undefined;
  reply_to_message_id: number | undefined;
  reply_markup: unknown;
  params: Record<string, unknown>;
  at: number;
}

export interface TelegramUpdate {
  update_id: number;
  [kind: string]: unknown;
}

export interface FakeTelegramOptions extends FakeServerOptions {
  token?: string;
  bot?: TelegramUser;
  /** Upper bound for a getUpdates long-poll wait, seconds (default 2). */
  maxPollSeconds?: number;
}

/** Fields that node-telegram-bot-api (and other clients) JSON-encode inside urlencoded/multipart bodies. */
const JSON_FIELDS = new Set([
  'reply_parameters',
  'reply_markup',
  'entities',
  'link_preview_options',
  'allowed_updates',
  'caption_entities',
  'commands',
]);

const NUMERIC_FIELDS = new Set([
  'chat_id',
  'message_id',
  'offset',
  'limit',
  'timeout',
  'reply_to_message_id',
  'message_thread_id',
  'from_chat_id',
  'user_id',
]);
const TEXT_FIELDS = new Set(['text', 'caption', 'parse_mode', 'callback_query_id', 'data']);

function coerce(key: string, v: unknown): unknown {
  if (typeof v !== 'string') return v;
  if (JSON_FIELDS.has(key) && /^\s*[[{]/.test(v)) {
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  }
  if (NUMERIC_FIELDS.has(key) && /^-?\d+$/.test(v) && v.length < 16) return Number(v);
  if (!TEXT_FIELDS.has(key) && (v === 'true' || v === 'false')) return v === 'true';
  return v;
}

export class FakeTelegram extends FakeServer {
  readonly token: string;
  readonly bot: Required<TelegramUser>;
  readonly sent: SentMessage[] = [];
  /** Every method call after parameter decoding, in order. */
  readonly calls: Array<{ method: string; params: Record<string, unknown> }> = [];
  private updates: TelegramUpdate[] = [];
  private waiters = new Set<() => void>();
  private nextUpdateId = 1;
  private nextMessageId = 1;
  private readonly maxPoll: number;

  constructor(opts: FakeTelegramOptions = {}) {
    super(opts);
    this.token = opts.token ?? '123456:TEST-TOKEN';
    this.bot = { id: 777000, is_bot: true, first_name: 'Factory', username: 'factory_test_bot', ...(opts.bot ?? {}) };
    this.maxPoll = opts.maxPollSeconds ?? 2;
    this.route('*', '/bot:token/:method', (r) => this.call(r));
  }

  /** Queues an incoming message replying to `toMessageId`; chat defaults to that message's chat. */
  pushReply(
    toMessageId: number,
    text: string,
    fromUser: TelegramUser = { id: 1, username: 'alice' },
    chatId?: number | string,
  ): TelegramUpdate {
    const original = this.sent.find((s) => s.message_id === toMessageId);
    const chat = chatId ?? original?.chat_id ?? fromUser.id;
    return this.pushMessage(text, fromUser, chat, {
      reply_to_message: { message_id: toMessageId, chat: { id: chat }, text: original?.text },
    });
  }

  /** Queues an incoming (non-reply) message. */
  pushMessage(
    text: string,
    fromUser: TelegramUser = { id: 1, username: 'alice' },
    chatId?: number | string,
    extra: Record<string, unknown> = {},
  ): TelegramUpdate {
    const chat = chatId ?? fromUser.id;
    return this.pushUpdate({
      message: {
        message_id: this.nextMessageId++,
        chat: { id: chat, type: 'private' },
        from: { is_bot: false, first_name: fromUser.username ?? 'user', ...fromUser },
        text,
        date: Math.floor(Date.now() / 1000),
        ...extra,
      },
    });
  }

  /** Queues an arbitrary update (update_id assigned unless given). */
  pushUpdate(update: Record<string, unknown>): TelegramUpdate {
    const u: TelegramUpdate = { ...update, update_id: typeof update.update_id === 'number' ? update.update_id : this.nextUpdateId++ };
    this.nextUpdateId = Math.max(this.nextUpdateId, u.update_id + 1);
    this.updates.push(u);
    for (const w of this.waiters) w();
    return u;
  }

  /** Updates not yet confirmed by a getUpdates offset. */
  get pendingUpdates(): TelegramUpdate[] {
    return [...this.updates];
  }

  waitForSent(predicate: (m: SentMessage) => boolean = () => true, timeoutMs = 5000): Promise<SentMessage> {
    return pollUntil(() => this.sent.find(predicate), timeoutMs, 'a sent Telegram message');
  }

  protected override guard(req: RouteRequest): Reply | undefined {
    if (req.params.token === this.token) return undefined;
    return { status: 401, json: { ok: false, error_code: 401, description: 'Unauthorized' } };
  }

  protected override failureBody(status: number): unknown {
    return { ok: false, error_code: status, description: status === 502 ? 'Bad Gateway' : 'Internal Server Error' };
  }

  protected override notFoundBody(): unknown {
    return { ok: false, error_code: 404, description: 'Not Found' };
  }

  private params(r: RouteRequest): Record<string, unknown> {
    const raw: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(r.query)) raw[k] = Array.isArray(v) ? v[0] : v;
    Object.assign(raw, r.form ?? {});
    if (r.json && typeof r.json === 'object' && !Array.isArray(r.json)) Object.assign(raw, r.json);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw)) out[k] = coerce(k, v);
    return out;
  }

  private ok(result: unknown): Reply {
    return { json: { ok: true, result } };
  }

  private bad(description: string, code = 400): Reply {
    return { status: code, json: { ok: false, error_code: code, description } };
  }

  private async call(r: RouteRequest): Promise<Reply> {
    const method = r.params.method ?? '';
    const p = this.params(r);
    this.calls.push({ method, params: p });
    switch (method) {
      case 'getMe':
        return this.ok(this.bot);
      case 'sendMessage':
        return this.sendMessage(p);
      case 'getUpdates':
        return this.getUpdates(p, r.signal);
      case 'editMessageText':
        return this.ok({ message_id: p.message_id, chat: { id: p.chat_id }, text: p.text, date: Math.floor(Date.now() / 1000) });
      case 'getChat':
        return this.ok({ id: p.chat_id, type: 'private' });
      case 'getWebhookInfo':
        return this.ok({ url: '', has_custom_certificate: false, pending_update_count: this.updates.length });
      case 'deleteWebhook':
      case 'setWebhook':
      case 'setMyCommands':
      case 'deleteMyCommands':
      case 'sendChatAction':
      case 'answerCallbackQuery':
      case 'deleteMessage':
      case 'setMessageReaction':
      case 'logOut':
      case 'close':
        return this.ok(true);
      default:
        return this.bad('Not Found: method not found', 404);
    }
  }

  private sendMessage(p: Record<string, unknown>): Reply {
    if (p.chat_id === undefined || p.chat_id === '') return this.bad('Bad Request: chat_id is empty');
    if (typeof p.text !== 'string' || p.text === '') return this.bad('Bad Request: message text is empty');
    const rp = p.reply_parameters as { message_id?: unknown } | undefined;
    const replyTo =
      typeof rp?.message_id === 'number' ? rp.message_id : typeof p.reply_to_message_id === 'number' ? p.reply_to_message_id : undefined;
    const chatId = p.chat_id as number | string;
    const msg: SentMessage = {
      message_id: this.nextMessageId++,
      chat_id: chatId,
      text: p.text,
      parse_mode: typeof p.parse_mode === 'string' ? p.parse_mode : undefined,
      reply_to_message_id: replyTo,
      reply_markup: p.reply_markup,
      params: p,
      at: Date.now(),
    };
    this.sent.push(msg);
    return this.ok({
      message_id: msg.message_id,
      from: this.bot,
      chat: { id: chatId, type: 'private' },
      date: Math.floor(msg.at / 1000),
      text: msg.text,
      ...(replyTo !== undefined ? { reply_to_message: { message_id: replyTo, chat: { id: chatId } } } : {}),
    });
  }

  private async getUpdates(p: Record<string, unknown>, signal: AbortSignal): Promise<Reply> {
    const offset = typeof p.offset === 'number' ? p.offset : undefined;
    const limit = typeof p.limit === 'number' && p.limit > 0 ? p.limit : 100;
    const timeout = Math.min(typeof p.timeout === 'number' ? p.timeout : 0, this.maxPoll);
    // Like Telegram: an offset confirms (drops) every update with a smaller id.
    if (offset !== undefined) this.updates = this.updates.filter((u) => u.update_id >= offset);
    const ready = () => this.updates.filter((u) => offset === undefined || u.update_id >= offset).slice(0, limit);
    let batch = ready();
    if (batch.length === 0 && timeout > 0 && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, timeout * 1000);
        this.waiters.add(done);
        signal.addEventListener('abort', done);
      });
      batch = ready();
    }
    return this.ok(batch);
  }
}
