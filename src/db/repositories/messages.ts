import type { AsyncDb } from '../query.js';
import { nowIso } from '../time.js';

export const MESSAGE_TYPES = ['info', 'question', 'handoff', 'status', 'error'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/** A row of `messages`; its columns are already the public Message shape, in upstream field order. */
export interface MessageRow {
  id: number;
  sender: string;
  recipient: string | null;
  task_id: number | null;
  workflow_id: number | null;
  message: string;
  message_type: MessageType;
  reply_to: number | null;
  created_at: string;
}

export interface NewMessage {
  sender: string;
  recipient?: string | null;
  task_id?: number | null;
  workflow_id?: number | null;
  message: string;
  message_type?: MessageType;
  reply_to?: number | null;
}

export interface MessageFilters {
  task_id?: number;
  workflow_id?: number;
  message_type?: MessageType;
  /** Exact match; `task-<id>` also matches agent senders `task-<id>:<agent_type>`. */
  sender?: string;
  recipient?: string;
  /** Free text; turned into a safe FTS5 query (see ftsQuery). */
  search?: string;
  before_id?: number;
  after_id?: number;
  /** ISO times (already normalised to the stored `...Z` form), both inclusive. */
  since?: string;
  before?: string;
  limit?: number;
  offset?: number;
}

/** Upper bound on a thread, so a pathological reply chain cannot return an unbounded array. */
export const MAX_THREAD_SIZE = 2000;

/**
 * Turns user text into an FTS5 query that can never be FTS syntax: every word becomes a quoted
 * prefix phrase (`"auth"*`), words are ANDed. Quotes inside a word are doubled as FTS5 requires;
 * words without any letter or digit (`*`, `(`, `OR` is fine — it is quoted) are dropped because
 * they would only produce empty phrases. Returns null when nothing searchable is left.
 */
export function ftsQuery(text: string): string | null {
  const words = text
    .split(/\s+/)
    .filter((w) => /[\p{L}\p{N}]/u.test(w))
    .slice(0, 32);
  if (words.length === 0) return null;
  return words.map((w) => `"${w.replace(/"/g, '""')}"*`).join(' ');
}

/**
 * The PostgreSQL twin of ftsQuery: every run of letters and digits becomes a prefix lexeme
 * (`auth:*`), all ANDed, so user text can never be tsquery syntax.
 */
export function tsQuery(text: string): string | null {
  const parts = (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).slice(0, 32);
  if (parts.length === 0) return null;
  return parts.map((p) => `${p}:*`).join(' & ');
}

const likeEscape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/** The message board table, its FTS5 index and thread walks. */
export class MessagesRepo {
  constructor(private readonly db: AsyncDb) {}

  async create(m: NewMessage): Promise<MessageRow> {
    return (await this.db.get(
      `INSERT INTO messages (sender, recipient, task_id, workflow_id, message, message_type, reply_to, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
      m.sender,
      m.recipient ?? null,
      m.task_id ?? null,
      m.workflow_id ?? null,
      m.message,
      m.message_type ?? 'info',
      m.reply_to ?? null,
      nowIso(),
    )) as MessageRow;
  }

  async get(id: number): Promise<MessageRow | undefined> {
    return (await this.db.get('SELECT * FROM messages WHERE id = ?', id)) as MessageRow | undefined;
  }

  /**
   * The first referenced id that does not exist, as the field name to report (reply_to, task_id,
   * workflow_id), or undefined when all exist. Checked up front so the caller gets a 400 naming the
   * field rather than a foreign-key error.
   */
  async missingReference(
    m: Pick<NewMessage, 'task_id' | 'workflow_id' | 'reply_to'>,
  ): Promise<'task_id' | 'workflow_id' | 'reply_to' | undefined> {
    const exists = async (table: 'tasks' | 'workflows' | 'messages', id: number) =>
      (await this.db.get(`SELECT 1 FROM ${table} WHERE id = ?`, id)) !== undefined;
    if (m.task_id != null && !(await exists('tasks', m.task_id))) return 'task_id';
    if (m.workflow_id != null && !(await exists('workflows', m.workflow_id))) return 'workflow_id';
    if (m.reply_to != null && !(await exists('messages', m.reply_to))) return 'reply_to';
    return undefined;
  }

  /** Newest first. Unlike upstream, `search` combines with every other filter and with offset. */
  async list(f: MessageFilters = {}): Promise<MessageRow[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.task_id !== undefined) {
      where.push('task_id = ?');
      args.push(f.task_id);
    }
    if (f.workflow_id !== undefined) {
      where.push('workflow_id = ?');
      args.push(f.workflow_id);
    }
    if (f.message_type !== undefined) {
      where.push('message_type = ?');
      args.push(f.message_type);
    }
    if (f.sender !== undefined) {
      // Upstream agents posted as `task-<id>`; ours add `:<agent_type>`. Old filters keep working.
      if (/^task-\d+$/.test(f.sender)) {
        where.push("(sender = ? OR sender LIKE ? ESCAPE '\\')");
        args.push(f.sender, `${likeEscape(f.sender)}:%`);
      } else {
        where.push('sender = ?');
        args.push(f.sender);
      }
    }
    if (f.recipient !== undefined) {
      where.push('recipient = ?');
      args.push(f.recipient);
    }
    if (f.before_id !== undefined) {
      where.push('id < ?');
      args.push(f.before_id);
    }
    if (f.after_id !== undefined) {
      where.push('id > ?');
      args.push(f.after_id);
    }
    if (f.since !== undefined) {
      where.push('created_at >= ?');
      args.push(f.since);
    }
    if (f.before !== undefined) {
      where.push('created_at <= ?');
      args.push(f.before);
    }
    if (f.search !== undefined && f.search.trim() !== '') {
      const q = this.db.dialect === 'postgres' ? tsQuery(f.search) : ftsQuery(f.search);
      if (q === null) return []; // only punctuation: nothing can match
      where.push(
        this.db.dialect === 'postgres'
          ? "to_tsvector('simple', message || ' ' || sender || ' ' || coalesce(recipient, '')) @@ to_tsquery('simple', ?)"
          : 'id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)',
      );
      args.push(q);
    }
    const sql = `SELECT * FROM messages ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ? OFFSET ?`;
    args.push(f.limit ?? 100, f.offset ?? 0);
    return (await this.db.all(sql, ...args)) as MessageRow[];
  }

  /** The message and all its replies at any depth, oldest first; [] when the message does not exist. */
  async thread(id: number): Promise<MessageRow[]> {
    return (await this.db.all(
      `WITH RECURSIVE t(id) AS (
         SELECT id FROM messages WHERE id = ?
         UNION
         SELECT m.id FROM messages m JOIN t ON m.reply_to = t.id
       )
       SELECT messages.* FROM messages JOIN t USING (id) ORDER BY messages.id LIMIT ?`,
      id,
      MAX_THREAD_SIZE,
    )) as MessageRow[];
  }
}

/** The public Message object, fields in upstream order. */
export function messageJson(m: MessageRow) {
  return {
    id: m.id,
    sender: m.sender,
    recipient: m.recipient,
    task_id: m.task_id,
    workflow_id: m.workflow_id,
    message: m.message,
    message_type: m.message_type,
    reply_to: m.reply_to,
    created_at: m.created_at,
  };
}
export type MessageJson = ReturnType<typeof messageJson>;
