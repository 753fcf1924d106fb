// The message board: validates and stores messages, puts them on the live stream, and forwards the
// configured types to Telegram.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { MESSAGE_TYPES, messageJson, type MessageJson, type MessagesRepo, type MessageType } from '../db/repositories/messages.js';
import type { StreamPublisher } from '../events/bus.js';
import { DomainError } from '../errors.js';
import { escapeAndTruncate, escapeHtml, type TelegramNotifier } from '../integrations/telegram.js';
import { scrub } from '../secrets.js';

export interface PostInput {
  sender: string;
  message: string;
  recipient?: string | null;
  message_type?: MessageType;
  task_id?: number | null;
  workflow_id?: number | null;
  reply_to?: number | null;
}

/** The part of a task postFromAgent needs. */
export interface AgentTaskRef {
  id: number;
  agent_type: string;
  workflow_id?: number | null;
}

/** Characters of a message body put into a Telegram notice; the board keeps the full text. */
export const TELEGRAM_BODY_CHARS = 1500;
/** Sender and recipient names longer than this are rejected (API) or cut (agents). */
export const MAX_NAME_CHARS = 200;

const ICONS: Record<MessageType, string> = { info: 'ℹ️', question: '❓', handoff: '🤝', status: '📊', error: '❌' };

/** Sender name of an agent's message: upstream used `task-<id>`; the agent type is added for readers. */
export const agentSender = (task: AgentTaskRef) => `task-${task.id}:${task.agent_type}`;

export interface BoardDeps {
  config: Config;
  logger: Logger;
  messages: MessagesRepo;
  stream: StreamPublisher;
  telegram: TelegramNotifier;
}

export class BoardService {
  constructor(private readonly d: BoardDeps) {}

  /** False when message_board.enabled is off: agent and system messages are then not recorded. */
  get enabled(): boolean {
    return this.d.config.message_board.enabled;
  }

  /**
   * Stores a message (REST posts always come here, whatever `enabled` says), publishes it on the
   * live stream as kind 'message', and queues a Telegram notice for forwarded types.
   * Throws DomainError: invalid naming the field (empty text, unknown reference), too_large for oversize text.
   */
  async post(input: PostInput): Promise<MessageJson> {
    const max = this.d.config.message_board.max_message_chars;
    if (typeof input.message !== 'string' || input.message.trim() === '') {
      throw new DomainError('invalid', 'invalid_input', 'message: must not be empty', 'message');
    }
    if (input.message.length > max) {
      throw new DomainError(
        'too_large',
        'payload_too_large',
        `message: is ${input.message.length} characters; at most ${max} are allowed (message_board.max_message_chars)`,
        'message',
      );
    }
    const sender = input.sender?.trim() ?? '';
    if (sender === '') throw new DomainError('invalid', 'invalid_input', 'sender: must not be empty', 'sender');
    if (sender.length > MAX_NAME_CHARS)
      throw new DomainError('invalid', 'invalid_input', `sender: must be at most ${MAX_NAME_CHARS} characters`, 'sender');
    if ((input.recipient?.length ?? 0) > MAX_NAME_CHARS)
      throw new DomainError('invalid', 'invalid_input', `recipient: must be at most ${MAX_NAME_CHARS} characters`, 'recipient');
    const type = input.message_type ?? 'info';
    if (!MESSAGE_TYPES.includes(type)) {
      throw new DomainError('invalid', 'invalid_input', `message_type: must be one of ${MESSAGE_TYPES.join(', ')}`, 'message_type');
    }
    const refs = { task_id: input.task_id ?? null, workflow_id: input.workflow_id ?? null, reply_to: input.reply_to ?? null };
    const missingError = (missing: keyof typeof refs) => {
      const what = missing === 'reply_to' ? 'message' : missing === 'task_id' ? 'task' : 'workflow';
      return new DomainError('invalid', 'invalid_input', `${missing}: ${what} ${refs[missing]} does not exist`, missing);
    };
    const missing = await this.d.messages.missingReference(refs);
    if (missing) throw missingError(missing);
    let row;
    try {
      row = await this.d.messages.create({
        sender,
        recipient: input.recipient?.trim() || null,
        message: scrub(input.message),
        message_type: type,
        ...refs,
      });
    } catch (err) {
      // The check above is not atomic with the insert: a row referenced may have gone meanwhile, and
      // the foreign key refused the insert. Report it like the check would have.
      const gone = await this.d.messages.missingReference(refs).catch(() => undefined);
      if (gone) throw missingError(gone);
      throw err;
    }
    const msg = messageJson(row);
    await this.d.stream.publish('message', msg.task_id, msg);
    await this.forward(msg);
    return msg;
  }

  /** A message from Factory itself (task started/completed/failed); skipped when the board is disabled. */
  async postSystem(input: Omit<PostInput, 'sender'> & { sender?: string }): Promise<MessageJson | null> {
    if (!this.enabled) return null;
    try {
      const max = this.d.config.message_board.max_message_chars;
      return await this.post({ ...input, sender: input.sender ?? 'orchestrator', message: clip(input.message, max) });
    } catch (err) {
      this.d.logger.warn({ err, task_id: input.task_id }, 'system message not posted');
      return null;
    }
  }

  /**
   * Handles an agent's `{"type":"message","to","content","message_type"}` line. Never throws into the
   * runner: an invalid object is dropped with a warning. Unknown message_type becomes info (the text
   * is still worth keeping); overlong content is cut to max_message_chars rather than lost.
   */
  async postFromAgent(task: AgentTaskRef, obj: unknown): Promise<MessageJson | null> {
    if (!this.enabled) return null;
    const log = this.d.logger.child({ task_id: task.id });
    try {
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
        log.warn('agent message dropped: not a JSON object');
        return null;
      }
      const o = obj as Record<string, unknown>;
      if (typeof o.content !== 'string' || o.content.trim() === '') {
        log.warn('agent message dropped: "content" must be a non-empty string');
        return null;
      }
      let type: MessageType = 'info';
      if (typeof o.message_type === 'string' && (MESSAGE_TYPES as readonly string[]).includes(o.message_type))
        type = o.message_type as MessageType;
      else if (o.message_type !== undefined)
        log.warn({ message_type: o.message_type }, 'agent message: unknown message_type, posted as info');
      const to = typeof o.to === 'string' && o.to.trim() !== '' ? o.to.trim().slice(0, MAX_NAME_CHARS) : null;
      // A reply_to that does not exist is ignored rather than losing the message.
      const replyTo =
        typeof o.reply_to === 'number' &&
        Number.isSafeInteger(o.reply_to) &&
        o.reply_to > 0 &&
        !(await this.d.messages.missingReference({ reply_to: o.reply_to }))
          ? o.reply_to
          : null;
      return await this.post({
        sender: agentSender(task),
        recipient: to,
        message: clip(o.content, this.d.config.message_board.max_message_chars),
        message_type: type,
        task_id: task.id,
        workflow_id: task.workflow_id ?? null,
        reply_to: replyTo,
      });
    } catch (err) {
      log.warn({ err }, 'agent message dropped');
      return null;
    }
  }

  /** Queues the Telegram notice for a forwarded type (message_board.forward_types). */
  private async forward(msg: MessageJson): Promise<void> {
    const mb = this.d.config.message_board;
    if (!mb.telegram_forward || !mb.forward_types.includes(msg.message_type)) return;
    try {
      await this.d.telegram.notify(formatTelegram(msg, this.d.config.public_url), {
        chatId: mb.telegram_chat_id || undefined,
        dedupeKey: `board-message:${msg.id}`,
      });
    } catch (err) {
      // The message is stored and streamed; a failed enqueue must not turn the post into an error.
      this.d.logger.error({ err, message_id: msg.id }, 'could not queue telegram notice for message');
    }
  }
}

function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  return max < 40 ? text.slice(0, max) : `${text.slice(0, max - 15)}… [truncated]`;
}

/** A short HTML notice: icon, type, sender → recipient, task, then the (cut) text. */
export function formatTelegram(msg: MessageJson, publicUrl = ''): string {
  const head = [`${ICONS[msg.message_type]} <b>${msg.message_type}</b> from <b>${escapeHtml(msg.sender)}</b>`];
  if (msg.recipient) head.push(` → ${escapeHtml(msg.recipient)}`);
  if (msg.task_id !== null) head.push(` · task #${msg.task_id}`);
  if (msg.workflow_id !== null) head.push(` · workflow #${msg.workflow_id}`);
  let text = `${head.join('')}\n${escapeAndTruncate(msg.message, TELEGRAM_BODY_CHARS)}`;
  if (publicUrl) text += `\n<a href="${escapeHtml(`${publicUrl.replace(/\/+$/, '')}/messages`, true)}">Message board</a>`;
  return text;
}
