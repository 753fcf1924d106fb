// Factory's own watchdog for the event loop: if anything blocks it (a synchronous call, a spin),
// the agent watchdog timers, the API and SSE all stall with it. Measures the loop's delay with
// node's histogram (p50/p99/max over the last full minute, for /health) and logs a warning when one
// turn blocks longer than `blockWarnMs`, seen by a timer that fires later than it should.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Logger } from 'pino';

const WINDOW_MS = 60_000;
const TICK_MS = 100;
/** Sampling interval of the histogram; node records whole intervals, so it is subtracted. */
const RESOLUTION_MS = 10;

export interface LoopDelay {
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  window_s: number;
  blocked_turns: number;
}

export class LoopMonitor {
  private histogram: IntervalHistogram | null = null;
  private last: LoopDelay | null = null;
  private windowTimer: NodeJS.Timeout | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private blocked = 0;
  private windowStart = Date.now();

  constructor(
    private readonly logger: Logger,
    private readonly blockWarnMs = 200,
  ) {}

  start(): void {
    if (this.histogram) return;
    this.histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.histogram.enable();
    this.windowStart = Date.now();
    this.windowTimer = setInterval(() => this.rotate(), WINDOW_MS);
    this.windowTimer.unref();
    let expected = Date.now() + TICK_MS;
    this.tickTimer = setInterval(() => {
      const late = Date.now() - expected;
      expected = Date.now() + TICK_MS;
      if (late > this.blockWarnMs) {
        this.blocked++;
        this.logger.warn({ blocked_ms: late }, 'event loop blocked: timers, the API and agent watchdogs were stalled');
      }
    }, TICK_MS);
    this.tickTimer.unref();
  }

  stop(): void {
    if (this.windowTimer) clearInterval(this.windowTimer);
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.histogram?.disable();
    this.histogram = null;
  }

  /** The last full minute, or the current partial one before the first minute is over. */
  health(): LoopDelay | null {
    return this.last ?? this.snapshot();
  }

  private snapshot(): LoopDelay | null {
    const h = this.histogram;
    if (!h || h.count === 0) return null;
    const ms = (ns: number) => Math.max(0, Math.round((ns / 1e6 - RESOLUTION_MS) * 100) / 100);
    return {
      p50_ms: ms(h.percentile(50)),
      p99_ms: ms(h.percentile(99)),
      max_ms: ms(h.max),
      window_s: Math.round((Date.now() - this.windowStart) / 1000),
      blocked_turns: this.blocked,
    };
  }

  private rotate(): void {
    this.last = this.snapshot();
    this.histogram?.reset();
    this.blocked = 0;
    this.windowStart = Date.now();
  }
}
