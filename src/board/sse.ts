// Server-Sent Events for the live stream (messages, task status, ...). One bus subscription fans each
// event out to every client; a frame is built once per event, and replay reads the persisted events
// table, so hundreds of clients cost one loop and no per-client polling.
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { EventRow, EventsRepo } from '../db/repositories/events.js';
import type { EventBus } from '../events/bus.js';
import { DomainError } from '../errors.js';

export interface SseOptions {
  /** `: ping` comment interval; keeps proxies from closing idle streams and notices dead peers. Default 15 s. */
  heartbeatMs?: number;
  /** Most events replayed for a reconnecting client; further behind gets a `reset` event. Default 1000. */
  replayLimit?: number;
  /** A client whose unsent backlog exceeds this is dropped instead of buffering without bound. Default 1 MiB. */
  maxBufferBytes?: number;
  /** Reconnect delay suggested to EventSource clients. Default 3000 ms. */
  retryMs?: number;
  /** Above this many clients new connections get 503. Default 10 000. */
  maxClients?: number;
  /** How often the events table is trimmed, and to how many rows. Default every 10 min, 50 000 kept. */
  trimIntervalMs?: number;
  keepEvents?: number;
}

export interface StreamFilter {
  /** Event kinds to send (message, task_status, ...); undefined = all. */
  types?: ReadonlySet<string>;
  /** Only events about this task (events.task_id). */
  taskId?: number;
  /** Only messages of this type; events of other kinds are not affected. */
  messageType?: string;
}

interface Client {
  raw: ServerResponse;
  filter: StreamFilter;
  /** Live events up to this id are not sent: the client got them by replay, or they predate it. */
  floor: number;
  /** While the client is being set up (reading the log): live events for it, sent after the replay. */
  held: EventRow[] | null;
}

const DEFAULTS: Required<SseOptions> = {
  heartbeatMs: 15_000,
  replayLimit: 1000,
  maxBufferBytes: 1024 * 1024,
  retryMs: 3000,
  maxClients: 10_000,
  trimIntervalMs: 10 * 60_000,
  keepEvents: 50_000,
};

const HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};

/** One SSE frame. Event payloads are JSON.stringify output, so they never contain a raw newline. */
export function sseFrame(kind: string, data: string, id?: number): string {
  return `${id !== undefined ? `id: ${id}\n` : ''}event: ${kind.replace(/[\r\n]/g, '')}\ndata: ${data}\n\n`;
}

/** Fans the persisted live stream out to SSE clients, with replay by Last-Event-ID and slow-client drops. */
export class SseHub {
  readonly opts: Required<SseOptions>;
  private readonly clients = new Set<Client>();
  private readonly unsubscribe: () => void;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly trimmer: NodeJS.Timeout;
  private stopped = false;
  /** Counters for /health and the tests. */
  readonly stats = { connected: 0, dropped_slow: 0, replayed: 0, resets: 0 };

  constructor(
    private readonly events: EventsRepo,
    bus: EventBus,
    private readonly logger: Logger,
    opts: SseOptions = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
    this.unsubscribe = bus.on('stream', (row) => this.broadcast(row));
    this.heartbeat = setInterval(() => this.ping(), this.opts.heartbeatMs);
    this.heartbeat.unref();
    this.trimmer = setInterval(() => this.trim(), this.opts.trimIntervalMs);
    this.trimmer.unref();
    this.trim();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /**
   * Takes over the response and streams to it: `retry` + `connected`, then the events after
   * `lastEventId` (or a `reset` when too far behind), then live events. The table's newest id at
   * connect time splits the two: replay reads up to it, and the live stream skips what is not newer.
   * So no event falls between them or arrives twice, whether the bus delivers an event at its insert
   * (SQLite) or later through the LISTEN feed, together with other processes' events (PostgreSQL).
   */
  async open(req: FastifyRequest, reply: FastifyReply, filter: StreamFilter, lastEventId: number | undefined): Promise<void> {
    if (this.stopped) throw new DomainError('unavailable', 'shutting_down', 'the server is shutting down');
    if (this.clients.size >= this.opts.maxClients)
      throw new DomainError('unavailable', 'too_many_streams', `too many open event streams (max ${this.opts.maxClients})`);
    reply.hijack();
    const raw = reply.raw;
    req.raw.socket.setTimeout(0);
    req.raw.socket.setNoDelay(true);
    raw.writeHead(200, HEADERS);
    // Listening before the log is read (asynchronously): a live event arriving meanwhile is held,
    // then sent after the replay if it is newer than the head, so none falls in between.
    const client: Client = { raw, filter, floor: Number.MAX_SAFE_INTEGER, held: [] };
    this.clients.add(client);
    this.stats.connected++;
    // The peer went away (or the write failed): forget it and make sure its socket is released, since
    // the response itself is never ended.
    const gone = () => {
      this.clients.delete(client);
      if (!raw.destroyed) raw.destroy();
    };
    raw.on('close', gone);
    raw.on('error', gone);
    try {
      const head = await this.events.lastId();
      client.floor = head;
      raw.write(`retry: ${this.opts.retryMs}\n${sseFrame('connected', JSON.stringify({ last_event_id: head }))}`);
      if (lastEventId !== undefined) await this.replay(client, lastEventId, head);
    } catch (err) {
      this.logger.warn({ err }, 'sse: the event log could not be read; closing the stream (the client reconnects)');
      gone();
      return;
    }
    const held = client.held ?? [];
    client.held = null;
    for (const row of held) if (row.id > client.floor) this.write(client, sseFrame(row.kind, row.payload, row.id));
  }

  private async replay(client: Client, after: number, head: number): Promise<void> {
    if (after >= head) {
      if (after === head) return;
      // An id from the future: another database, or the table was reset. Start over from now.
      this.reset(client, head, 'unknown_last_event_id');
      return;
    }
    const rows = (await this.events.after(after, this.opts.replayLimit + 1)).filter((r) => r.id <= head);
    // (Rows newer than head reach the client live.)
    // A jump in ids is a trim only when the client's own event is gone too: PostgreSQL ids may skip
    // a value (a rolled-back insert) without anything missing.
    const trimmed = rows.length > 0 && rows[0]!.id > after + 1 && (await this.events.firstId()) > after;
    if (rows.length > this.opts.replayLimit || trimmed) {
      this.reset(client, head, trimmed ? 'events_trimmed' : 'too_far_behind');
      return;
    }
    let chunk = '';
    for (const row of rows) {
      if (!matches(client.filter, row, lazyMessageType(row))) continue;
      chunk += sseFrame(row.kind, row.payload, row.id);
      // Bounded in bytes too: a backlog this large is better reloaded through the paged REST API.
      if (chunk.length > this.opts.maxBufferBytes) {
        this.reset(client, head, 'too_far_behind');
        return;
      }
    }
    if (chunk) client.raw.write(chunk);
    this.stats.replayed += rows.length;
  }

  // The client missed more than can be replayed: tell it to reload its state, and move its cursor to now.
  private reset(client: Client, head: number, reason: string): void {
    this.stats.resets++;
    client.raw.write(sseFrame('reset', JSON.stringify({ reason, last_event_id: head }), head));
  }

  private broadcast(row: EventRow): void {
    if (this.clients.size === 0) return;
    let frame: string | undefined;
    const messageType = lazyMessageType(row);
    for (const c of this.clients) {
      if (!matches(c.filter, row, messageType)) continue;
      if (c.held) {
        c.held.push(row);
        continue;
      }
      if (row.id <= c.floor) continue;
      frame ??= sseFrame(row.kind, row.payload, row.id);
      this.write(c, frame);
    }
  }

  private ping(): void {
    for (const c of this.clients) this.write(c, ': ping\n\n');
  }

  // Writes, and drops the client when its backlog passes maxBufferBytes: it is not reading (or far too
  // slowly), and keeping its frames would grow memory without bound. It reconnects with Last-Event-ID.
  private write(c: Client, chunk: string): void {
    const raw = c.raw;
    if (raw.destroyed || raw.writableEnded) {
      this.clients.delete(c);
      return;
    }
    if (!raw.write(chunk) && raw.writableLength > this.opts.maxBufferBytes) {
      this.clients.delete(c);
      this.stats.dropped_slow++;
      this.logger.warn({ backlog_bytes: raw.writableLength }, 'sse client dropped: not reading');
      raw.destroy();
    }
  }

  private trim(): void {
    this.events.trim(this.opts.keepEvents).catch((err: unknown) => this.logger.warn({ err }, 'events table trim failed'));
  }

  /** Ends every open stream (shutdown); clients reconnect to the next instance by themselves. */
  closeAll(): void {
    for (const c of this.clients) {
      const raw = c.raw;
      // A backlogged socket would never finish end(), which would hold up server.close().
      if (raw.writableLength > 64 * 1024) raw.destroy();
      else raw.end(() => raw.socket?.destroy());
    }
    this.clients.clear();
  }

  /** Stops the hub for good: no new streams, timers cleared, bus listener removed. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearInterval(this.trimmer);
    this.unsubscribe();
    this.closeAll();
  }
}

// Cheap checks first; the payload is parsed only for a message_type filter on a message event.
function matches(f: StreamFilter, row: EventRow, messageType: () => string | undefined): boolean {
  if (f.types && !f.types.has(row.kind)) return false;
  if (f.taskId !== undefined && row.task_id !== f.taskId) return false;
  if (f.messageType !== undefined && row.kind === 'message') return messageType() === f.messageType;
  return true;
}

// Parses a message event's payload at most once, however many clients filter on its type.
function lazyMessageType(row: EventRow): () => string | undefined {
  let done = false;
  let value: string | undefined;
  return () => {
    if (!done) {
      done = true;
      try {
        value = (JSON.parse(row.payload) as { message_type?: string }).message_type;
      } catch {
        value = undefined;
      }
    }
    return value;
  };
}
