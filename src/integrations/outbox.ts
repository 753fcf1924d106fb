// Durable delivery to outside services. Producers enqueue inside their own request (a SQLite row,
// so nothing is lost on a crash or while the service is down); one loop delivers due rows.
import type { Logger } from 'pino';
import { OutboxRepo, type EnqueueOptions, type OutboxRow } from '../db/repositories/outbox.js';
import { coerceError } from '../errors.js';
import { scrub } from '../secrets.js';

export interface DeliveryContext {
  id: number;
  attempt: number;
  signal: AbortSignal;
}
export type OutboxHandler = (payload: any, ctx: DeliveryContext) => Promise<unknown>;

/**
 * What a handler may throw to steer retries. `retryAfterMs` (e.g. Telegram 429 retry_after) replaces
 * the computed backoff; `permanent` (a 4xx other than 408/429) means retrying cannot help.
 */
export class DeliveryError extends Error {
  override name = 'DeliveryError';
  constructor(
    message: string,
    readonly opts: { retryAfterMs?: number; permanent?: boolean; status?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
  }
}

export interface OutboxOptions {
  /** First retry delay; attempt n waits base·2^(n-1), ±20 % jitter. Default 1 s. */
  baseDelayMs?: number;
  /** Cap on the computed backoff. Default 5 min. */
  maxDelayMs?: number;
  /** A permanent failure (4xx) is parked as dead after this many attempts. Default 3. */
  maxPermanentAttempts?: number;
  /** A transient failure is retried until the row is this old, then parked as dead. Default 72 h. */
  maxAgeMs?: number;
  /** Deliveries under way at once (each of a distinct order key). Default 8. */
  concurrency?: number;
  /** Longest idle sleep; notify() wakes the loop earlier. Default 30 s. */
  idleMs?: number;
  /** How long stop() lets in-flight deliveries finish before aborting them. Default 5 s. */
  stopGraceMs?: number;
  /** Delivered and dead rows older than this are deleted (hourly). Default 30 days. */
  retainMs?: number;
}

/** Shortest sleep between two rounds: timers, I/O and the HTTP server always get their turn. */
const MIN_SLEEP_MS = 5;

const DEFAULTS: Required<OutboxOptions> = {
  baseDelayMs: 1000,
  maxDelayMs: 5 * 60_000,
  maxPermanentAttempts: 3,
  maxAgeMs: 72 * 3600_000,
  concurrency: 8,
  idleMs: 30_000,
  stopGraceMs: 5000,
  retainMs: 30 * 24 * 3600_000,
};

/** Delivers outbox rows to per-channel handlers: oldest first, in order per order_key, with backoff. */
export class OutboxWorker {
  private readonly handlers = new Map<string, OutboxHandler>();
  private readonly opts: Required<OutboxOptions>;
  private loop: Promise<void> | null = null;
  private running = false;
  private dirty = false;
  private wake: (() => void) | null = null;
  private abort = new AbortController();
  private lastPurge = 0;
  /** Deliveries under way, by outbox row id. */
  private readonly inFlight = new Map<number, Promise<void>>();

  constructor(
    readonly repo: OutboxRepo,
    private readonly logger: Logger,
    opts: OutboxOptions = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  register(channel: string, handler: OutboxHandler): void {
    this.handlers.set(channel, handler);
    this.notify();
  }

  /**
   * Adds a delivery and wakes the loop. Idempotent per dedupeKey: the UNIQUE key decides in SQL
   * (ON CONFLICT DO NOTHING), so two producers racing with one key get the same row.
   */
  async enqueue(channel: string, payload: unknown, opts: EnqueueOptions = {}): Promise<OutboxRow> {
    const { row, created } = await this.repo.enqueue(channel, payload, opts);
    if (created) this.notify();
    return row;
  }

  notify(): void {
    this.dirty = true;
    this.wake?.();
  }

  pending(channel?: string): Promise<number> {
    return this.repo.pending(channel);
  }

  async health() {
    return { ...(await this.repo.stats()), running: this.running };
  }

  /** Starts the delivery loop; a no-op when it already runs. */
  start(): void {
    if (this.loop) return;
    this.running = true;
    this.abort = new AbortController();
    this.loop = this.run().finally(() => {
      this.loop = null;
    });
  }

  /** Stops the loop: in-flight deliveries get stopGraceMs, then their signal is aborted. Idempotent. */
  async stop(): Promise<void> {
    const loop = this.loop;
    if (!loop) return;
    this.running = false;
    this.wake?.();
    await loop;
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), this.opts.stopGraceMs);
    });
    const settled = Promise.all(this.inFlight.values()).then(() => 'done' as const);
    if ((await Promise.race([settled, grace])) === 'timeout') this.abort.abort();
    clearTimeout(timer);
    await settled;
  }

  /**
   * Starts every due row as soon as a slot is free and never waits for a batch: a request that hangs
   * (until its own timeout) holds back only its order key, not other chats, issues or channels.
   */
  private async run(): Promise<void> {
    while (this.running) {
      this.dirty = false;
      let delay: number;
      try {
        await this.startDue();
        await this.maybePurge();
        // A full pool sleeps until a delivery ends (it notifies); otherwise until the next head is due.
        const next =
          this.inFlight.size >= this.opts.concurrency ? undefined : await this.repo.nextDueAt(this.channels(), [...this.inFlight.keys()]);
        delay = next === undefined ? this.opts.idleMs : Math.min(next - Date.now(), this.opts.idleMs);
      } catch (err) {
        // A database error must not kill the loop; try again after an idle period.
        this.logger.error({ err: coerceError(err) }, 'outbox round failed');
        delay = this.opts.idleMs;
      }
      if (!this.running) break;
      // The floor makes a spin impossible whatever the rows say: every turn sleeps on a real timer.
      await this.sleep(Math.max(MIN_SLEEP_MS, delay));
    }
  }

  // Sleeps until the delay passes, notify() or stop(); returns at once if notified during the round.
  private sleep(ms: number): Promise<void> {
    if (this.dirty || !this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private channels(): string[] {
    return [...this.handlers.keys()];
  }

  /**
   * Starts the due rows that fit in the free slots; in-flight rows are skipped (and still block their key).
   * Only the loop calls this, one round at a time, so the in-flight set it reads cannot change under it
   * except by deliveries ending, and a delivery leaves the set only after its result is stored: a row
   * that due() returns is never one being delivered. The has() check below keeps that true even if
   * a second round ever overlapped.
   */
  private async startDue(): Promise<void> {
    const free = this.opts.concurrency - this.inFlight.size;
    if (free <= 0) return;
    const rows = await this.repo.due(this.channels(), Date.now(), free, [...this.inFlight.keys()]);
    for (const row of rows) {
      if (this.inFlight.has(row.id) || this.inFlight.size >= this.opts.concurrency) continue;
      const delivery = this.deliver(row)
        .catch((err) => this.logger.error({ err: coerceError(err), outbox_id: row.id }, 'outbox could not record a delivery'))
        .finally(() => {
          this.inFlight.delete(row.id);
          // Its successor (same order key) may be due now.
          this.notify();
        });
      this.inFlight.set(row.id, delivery);
    }
  }

  private async deliver(row: OutboxRow): Promise<void> {
    const handler = this.handlers.get(row.channel);
    if (!handler) return;
    const attempt = row.attempts + 1;
    try {
      const result = await handler(JSON.parse(row.payload), { id: row.id, attempt, signal: this.abort.signal });
      await this.repo.markDelivered(row.id, result === undefined ? '' : JSON.stringify(result));
    } catch (err) {
      const e = coerceError(err);
      const info = err instanceof DeliveryError ? err.opts : {};
      const message = scrub(`${e.message}`).slice(0, 2000);
      const age = Date.now() - Date.parse(row.created_at);
      if ((info.permanent && attempt >= this.opts.maxPermanentAttempts) || age >= this.opts.maxAgeMs) {
        await this.repo.markDead(row.id, `dead after ${attempt} attempts: ${message}`);
        this.logger.error({ outbox_id: row.id, channel: row.channel, attempt, error: message }, 'outbox delivery given up');
        return;
      }
      const wait = info.retryAfterMs ?? this.backoff(attempt);
      await this.repo.markFailed(row.id, message, Date.now() + wait);
      this.logger.warn(
        { outbox_id: row.id, channel: row.channel, attempt, retry_in_ms: wait, error: message },
        'outbox delivery failed; will retry',
      );
    }
  }

  /** base·2^(attempt-1) with ±20 % jitter, capped, so many failed rows do not retry in lockstep. */
  backoff(attempt: number): number {
    const raw = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** Math.min(attempt - 1, 30));
    return Math.min(this.opts.maxDelayMs, Math.round(raw * (0.8 + Math.random() * 0.4)));
  }

  private async maybePurge(): Promise<void> {
    if (Date.now() - this.lastPurge < 3600_000) return;
    this.lastPurge = Date.now();
    const n = await this.repo.purge(new Date(Date.now() - this.opts.retainMs).toISOString());
    if (n > 0) this.logger.info({ removed: n }, 'outbox purged old rows');
  }
}
