// The start, stop and /health parts of the process, in the order the composition root built them.
import type { Logger } from 'pino';
import { coerceError } from '../errors.js';

export interface Part {
  /** Runs at start, after boot recovery and before the queue claims work, in order of registration. */
  start?: () => Promise<void> | void;
  /** Runs at stop, after the queue stopped, in reverse order of registration. */
  stop?: () => Promise<void> | void;
}

export class Lifecycle {
  private readonly parts: Part[] = [];
  private readonly healthParts = new Map<string, () => unknown>();

  constructor(private readonly logger: Logger) {}

  add(part: Part): void {
    this.parts.push(part);
  }

  /** A /health field; the function may answer asynchronously (database counts). */
  health(name: string, fn: () => unknown): void {
    this.healthParts.set(name, fn);
  }

  /** Every health field; one that fails says so instead of failing /health. */
  async report(): Promise<Record<string, unknown>> {
    const parts = await Promise.all(
      [...this.healthParts].map(async ([k, fn]) => [
        k,
        await Promise.resolve()
          .then(fn)
          .catch((err: unknown) => ({ error: coerceError(err).message })),
      ]),
    );
    return Object.fromEntries(parts);
  }

  async startAll(): Promise<void> {
    for (const p of this.parts) await p.start?.();
  }

  /** Stops every part; one that fails is logged and the rest still stop. */
  async stopAll(): Promise<void> {
    for (const p of [...this.parts].reverse()) {
      try {
        await p.stop?.();
      } catch (err) {
        this.logger.error({ err: coerceError(err) }, 'shutdown hook failed');
      }
    }
  }
}
