// Keeps a claim's lease while its task runs: renewed every third of the lease, and checked every
// tenth of it. On a shared queue a lease another worker took, or one not confirmed for most of a
// lease period, stops the run before the task could run twice.
import type { Logger } from 'pino';
import type { LeaseGuard, TaskRow } from '../db/repositories/tasks.js';
import { coerceError } from '../errors.js';
import type { QueueBackend } from './backend.js';

export interface LeaseKeeping {
  queue: QueueBackend;
  logger: Logger;
  task: TaskRow;
  lease: LeaseGuard;
  leaseMs: number;
  /** Stops the run (the scheduler aborts its executor with this reason). */
  stop: (reason: 'lease_lost' | 'lease_unconfirmed') => void;
  /** The run was already stopped for some reason. */
  stopped: () => boolean;
}

/** Starts the lease timer; clear it with clearInterval when the run ends. */
export function keepLease(k: LeaseKeeping): NodeJS.Timeout {
  const { task, leaseMs } = k;
  let renewedAt = Date.now();
  let nextRenewal = renewedAt + Math.max(1000, Math.floor(leaseMs / 3));
  let renewing = false;
  // A renewal is asynchronous: one the database does not answer leaves the check below to act.
  const renew = () => {
    nextRenewal = Date.now() + Math.max(1000, Math.floor(leaseMs / 3));
    const sentAt = Date.now();
    renewing = true;
    void Promise.resolve()
      .then(() => k.queue.renew(task.id, k.lease, leaseMs))
      .then(
        (held) => {
          if (held) renewedAt = sentAt;
          else {
            k.logger.warn({ taskId: task.id }, 'lease renewal found no row held by this claim');
            // Another worker took the task over (this one was cut off for longer than a lease): stop
            // this copy so the task never runs twice.
            k.stop('lease_lost');
          }
        },
        (err: unknown) => k.logger.error({ err: coerceError(err), taskId: task.id }, 'lease renewal failed'),
      )
      .finally(() => {
        renewing = false;
      });
  };
  const timer = setInterval(
    () => {
      if (Date.now() >= nextRenewal && !renewing) renew();
      // Cut off from the database: before the lease can lapse and another worker take the task, stop
      // this copy and hand the task back (the work so far goes out as a checkpoint).
      if (k.queue.shared && !k.stopped() && Date.now() - renewedAt > leaseMs * 0.8) {
        k.logger.warn({ taskId: task.id }, 'no lease renewal for most of a lease period: stopping the agent');
        k.stop('lease_unconfirmed');
      }
    },
    Math.max(100, Math.floor(leaseMs / 10)),
  );
  timer.unref();
  return timer;
}
