// Telegram notifications. Sending goes through the outbox (channel 'telegram'), so a notice survives
// Telegram outages and restarts and is delivered once it can be, in order per chat.
import type { Api } from 'node-telegram-bot-api';
import type { Logger } from 'pino';
import { DeliveryError, type OutboxWorker } from './outbox.js';
import { escapeHtml, htmlToText } from './html.js';
import { scrub } from '../secrets.js';

export const TELEGRAM_CHANNEL = 'telegram';
/** Telegram rejects texts longer than this (UTF-16 units after entity parsing; we count the raw HTML). */
export const TELEGRAM_MAX_CHARS = 4096;

export interface TelegramPayload {
  chat_id: string;
  /** Already-formatted HTML (see escapeHtml). */
  text: string;
  reply_to_message_id?: number;
}

export interface TelegramSendResult {
  message_id: number;
  chat_id: string;
}

export interface TelegramOptions {
  token: string;
  /** Default chat (telegram.chat_id). */
  chatId: string;
  apiRoot: string;
  /** Per-request timeout, ms. Default 15 s. */
  timeoutMs?: number;
}

export interface NotifyOptions {
  /** Overrides the default chat (e.g. message_board.telegram_chat_id). */
  chatId?: string;
  /** Makes the notice idempotent and lets sentMessageId() find its Telegram message later. */
  dedupeKey?: string;
  /** Telegram message id to reply to (a clarification answer thread). */
  replyTo?: number;
}

export type TelegramSdk = typeof import('node-telegram-bot-api');
let sdk: Promise<TelegramSdk> | undefined;

/**
 * The Telegram client library, imported on first use: an installation without a bot token never
 * loads it, and one with a token loads it after the port is bound, not during boot.
 */
export function loadTelegramSdk(): Promise<TelegramSdk> {
  sdk ??= import('node-telegram-bot-api');
  return sdk;
}

// Telegram's HTML parse mode: only &, < and > are special in text, " too in attributes.
export { escapeHtml };

/**
 * Escapes `text` and cuts it so the escaped result fits `max` characters, never inside an entity
 * or a surrogate pair; a cut text ends with "…".
 */
export function escapeAndTruncate(text: string, max: number): string {
  const full = escapeHtml(text);
  if (full.length <= max) return full;
  let out = '';
  for (const ch of text) {
    const piece = escapeHtml(ch);
    if (out.length + piece.length > max - 1) break;
    out += piece;
  }
  return `${out}…`;
}

// Cutting HTML could split a tag or an entity (Telegram then rejects the whole text with a 400), so
// an overlong notice loses its markup (htmlToText) and is cut as plain text instead.

/** Turns a client error into a DeliveryError the outbox understands (429 wait, 4xx permanent). */
export function classifyTelegramError(err: unknown, token: string, lib: TelegramSdk): Error {
  const hide = (s: string) => (token ? s.split(token).join('[REDACTED]') : s);
  const { TelegramApiError, NetworkError, TimeoutError } = lib;
  if (err instanceof TelegramApiError) {
    const code = err.errorCode;
    const message = hide(`telegram ${code}: ${err.description}`);
    if (code === 429) return new DeliveryError(message, { status: code, retryAfterMs: Math.max(1, err.retryAfter ?? 1) * 1000 });
    const permanent = code >= 400 && code < 500 && code !== 408;
    return new DeliveryError(message, { status: code, permanent });
  }
  if (err instanceof NetworkError || err instanceof TimeoutError) return new DeliveryError(hide(`telegram unreachable: ${err.message}`));
  const e = err instanceof Error ? err : new Error(String(err));
  return new DeliveryError(hide(`telegram send failed: ${e.message}`));
}

/** Sends notices to Telegram through the outbox. A no-op when no bot token is configured. */
export class TelegramNotifier {
  /** Built at the first delivery, with the library loaded then. */
  private api: Api | undefined;

  constructor(
    private readonly opts: TelegramOptions,
    private readonly outbox: OutboxWorker,
    private readonly logger: Logger,
  ) {
    // Registered even when disabled is pointless; rows enqueued earlier with a token stay pending.
    if (opts.token) outbox.register(TELEGRAM_CHANNEL, (payload: TelegramPayload, ctx) => this.send(payload, ctx.signal));
  }

  /** True when a token and a default chat are configured. */
  get enabled(): boolean {
    return this.opts.token !== '' && this.opts.chatId !== '';
  }

  /**
   * Queues `html` (already escaped/formatted; cut to Telegram's limit here) for delivery.
   * Resolves to false (and does nothing) when there is no token or no chat to send to.
   */
  async notify(html: string, opts: NotifyOptions = {}): Promise<boolean> {
    const chatId = opts.chatId || this.opts.chatId;
    if (!this.opts.token || !chatId) return false;
    const text = html.length > TELEGRAM_MAX_CHARS ? escapeAndTruncate(htmlToText(html), TELEGRAM_MAX_CHARS) : html;
    const payload: TelegramPayload = { chat_id: chatId, text, ...(opts.replyTo ? { reply_to_message_id: opts.replyTo } : {}) };
    // One order key per chat: notices to a chat arrive in the order they were raised.
    await this.outbox.enqueue(TELEGRAM_CHANNEL, payload, { orderKey: `chat:${chatId}`, dedupeKey: opts.dedupeKey });
    return true;
  }

  /** Plain text convenience: escapes and truncates `text`, then notify(). */
  notifyText(text: string, opts: NotifyOptions = {}): Promise<boolean> {
    return this.notify(escapeAndTruncate(text, TELEGRAM_MAX_CHARS), opts);
  }

  /**
   * The Telegram message id of a delivered notice (by its dedupeKey), so a reply from the chat can be
   * matched to the question it answers. Undefined while it is still pending or unknown.
   */
  async sentMessageId(dedupeKey: string): Promise<number | undefined> {
    const row = await this.outbox.repo.byDedupeKey(dedupeKey);
    if (!row || row.delivered_at === null || !row.result) return undefined;
    try {
      const r = JSON.parse(row.result) as Partial<TelegramSendResult>;
      return typeof r.message_id === 'number' ? r.message_id : undefined;
    } catch {
      return undefined;
    }
  }

  /** The outbox handler: one sendMessage call; throws DeliveryError for the outbox's retry policy. */
  private async send(p: TelegramPayload, signal: AbortSignal): Promise<TelegramSendResult> {
    const lib = await loadTelegramSdk();
    this.api ??= new lib.Api(this.opts.token, { apiRoot: this.opts.apiRoot, maxRetries: 0, timeoutMs: this.opts.timeoutMs ?? 15_000 });
    const api = this.api;
    try {
      const msg = await api.sendMessage(
        {
          chat_id: p.chat_id,
          text: scrub(p.text),
          parse_mode: 'HTML',
          link_preview_options: { is_disabled: true },
          // The question may have been deleted meanwhile; send anyway rather than fail forever.
          ...(p.reply_to_message_id ? { reply_parameters: { message_id: p.reply_to_message_id, allow_sending_without_reply: true } } : {}),
        },
        signal,
      );
      this.logger.debug({ chat_id: p.chat_id, message_id: msg.message_id }, 'telegram message sent');
      return { message_id: msg.message_id, chat_id: p.chat_id };
    } catch (err) {
      throw classifyTelegramError(err, this.opts.token, lib);
    }
  }
}
