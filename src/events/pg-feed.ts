// Cross-process live events on PostgreSQL: every process LISTENs on the events channel and, when
// told a new event exists (or every few seconds, in case a notification was lost with a dropped
// connection), reads the rows after the last id it delivered and emits them on its bus in order.
// SSE clients of any process therefore see what every worker produced, with the same ids, and
// Last-Event-ID replay keeps working from the table.
import pg from 'pg';
import type { Logger } from 'pino';
import { EVENTS_CHANNEL, type EventsRepo } from '../db/repositories/events.js';
import { OUTBOX_CHANNEL } from '../db/repositories/outbox.js';
import type { EventBus } from './bus.js';
import { coerceError } from '../errors.js';

const BATCH = 50;
/** Bytes of payload sent to the bus before letting sockets drain. */
const YIELD_BYTES = 256 * 1024;

export class PgEventFeed {
  private client: pg.Client | null = null;
  private lastId = 0;
  private readonly positioned: Promise<boolean>;
  private timer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private draining = false;
  private again = false;

  constructor(
    private readonly url: string,
    private readonly events: EventsRepo,
    private readonly bus: EventBus,
    private readonly logger: Logger,
    private readonly safetyPollMs = 2000,
  ) {
    // The position is read from construction on (before the SSE hub is built), so nothing written
    // meanwhile is skipped; a failed read is tried once more at start (and then fails the start).
    this.positioned = events.lastId().then(
      (id) => {
        this.lastId = id;
        return true;
      },
      () => false,
    );
  }

  async start(): Promise<void> {
    if (!(await this.positioned)) this.lastId = await this.events.lastId();
    await this.connect().catch((err) => {
      this.logger.warn({ err: coerceError(err) }, 'event feed: LISTEN connection failed; polling until it is back');
      this.scheduleReconnect();
    });
    this.timer = setInterval(() => this.drain(), this.safetyPollMs);
    this.timer.unref();
  }

  private async connect(): Promise<void> {
    // Keepalive probes find a peer that vanished without closing the connection (the 2 s safety poll
    // keeps events flowing meanwhile).
    const client = new pg.Client({
      connectionString: this.url,
      application_name: 'factory-events',
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      connectionTimeoutMillis: 5000,
    });
    client.on('notification', (n) => {
      if (n.channel === OUTBOX_CHANNEL) this.bus.emit('outbox.wake', {});
      else this.drain();
    });
    client.on('error', (err) => {
      this.logger.warn({ err: coerceError(err) }, 'event feed: connection lost');
      if (this.client === client) this.client = null;
      client.end().catch(() => {});
      this.scheduleReconnect();
    });
    await client.connect();
    await client.query(`LISTEN ${EVENTS_CHANNEL}; LISTEN ${OUTBOX_CHANNEL}`);
    if (this.stopped) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    // Whatever was written while we were not listening.
    this.drain();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect().catch(() => this.scheduleReconnect());
    }, 1000);
    this.reconnectTimer.unref();
  }

  /**
   * Emits every event after the last one delivered, in small batches with a turn of the event loop
   * between them: a burst written by other processes must not reach every SSE socket in one
   * synchronous write (healthy clients would look too slow and be dropped). Calls made while a
   * drain runs coalesce into one more pass.
   */
  drain(): void {
    if (this.stopped) return;
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = true;
    void this.pump().finally(() => {
      this.draining = false;
    });
  }

  private async pump(): Promise<void> {
    try {
      do {
        this.again = false;
        for (;;) {
          const rows = await this.events.after(this.lastId, BATCH);
          let bytes = 0;
          for (const row of rows) {
            if (this.stopped) return;
            this.lastId = row.id;
            this.bus.emit('stream', row);
            bytes += row.payload.length;
            if (bytes > YIELD_BYTES) {
              bytes = 0;
              await new Promise((r) => setImmediate(r));
            }
          }
          if (rows.length < BATCH || this.stopped) break;
          await new Promise((r) => setImmediate(r));
        }
      } while (this.again && !this.stopped);
    } catch (err) {
      this.logger.warn({ err: coerceError(err) }, 'event feed: reading new events failed');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => {});
  }
}
