// Tasks left in_progress by a process that is gone: each goes back to the queue, or fails after too
// many attempts, or ends cancelled when someone asked; what is left of its agent is stopped first.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { RunRow, RunsRepo } from '../db/repositories/runs.js';
import type { TaskService } from '../tasks/service.js';
import { nowIso } from '../db/time.js';
import { coerceError } from '../errors.js';
import type { QueueBackend } from './backend.js';

export interface RecoveryDeps {
  queue: QueueBackend;
  tasks: TaskService;
  runs: RunsRepo;
  logger: Logger;
  /** Ends what is left of an agent from a previous run (its process group). */
  reapAgent: (run: Pick<RunRow, 'pid' | 'proc_mark'>) => Promise<void>;
  owner: string;
  leaseMs: number;
  maxAttempts: number;
}

export class Recovery {
  constructor(private readonly d: RecoveryDeps) {}

  // Tasks left in_progress by a process that is gone go back to the queue (or fail after too many attempts).
  // One process (SQLite): every in_progress task not ours is an orphan, checked once at start.
  // Several (PostgreSQL): a task is an orphan when its lease has lapsed; any worker may take it over,
  // and the loop keeps checking, because a worker can die at any time.
  // One pass at a time: the loop and a caller (start, a test) may ask at once, and a second pass must
  // see what the first one did (a task it took over is ours by then, not an orphan to skip).
  recover(running: number[]): Promise<void> {
    const pass = this.recovering.then(() => this.recoverPass(running));
    this.recovering = pass.catch(() => {});
    return pass;
  }

  private recovering: Promise<void> = Promise.resolve();

  private async recoverPass(running: number[]): Promise<void> {
    const orphans = await this.d.queue.orphans(this.d.owner, this.d.leaseMs, running);
    for (const t of orphans) {
      if (this.d.queue.shared)
        this.d.logger.warn({ taskId: t.id, previousOwner: t.previous_owner }, 'task lease lapsed: taking the task over');
      // An agent of the dead process may still be running in its own process group: stop it first.
      // Only an agent on this host can be reached (pids of other hosts mean nothing here).
      // Awaited: the task may run again only once nothing of its previous run is left.
      for (const r of await this.d.runs.open(t.id)) {
        if ((r.pid || r.proc_mark) && (!r.host || r.host === hostname())) {
          await this.d
            .reapAgent(r)
            .catch((err: unknown) => this.d.logger.warn({ err: coerceError(err), taskId: t.id }, 'could not reap a leftover agent'));
        }
      }
      await this.d.runs.closeOpen(t.id, 'interrupted', 'Factory stopped while the agent was running');
      if (t.attempts >= this.d.maxAttempts) {
        const errors = (await this.d.runs.forTask(t.id)).filter((r) => r.error).map((r) => `attempt ${r.attempt}: ${r.error}`);
        await this.d.tasks.transition(t.id, ['in_progress'], 'failed', {
          error: `Gave up after ${t.attempts} attempts (max ${this.d.maxAttempts}). ${errors.join('; ')}`.trim(),
          completed_at: nowIso(),
          lease_owner: null,
          lease_expires_at: null,
          run_requested_at: null,
        });
        this.d.logger.warn({ taskId: t.id, attempts: t.attempts }, 'interrupted task failed: too many attempts');
      } else if (t.cancel_requested) {
        // Someone asked to cancel it while its worker was dying: honour that instead of running it again.
        await this.d.tasks.transition(t.id, ['in_progress'], 'cancelled', {
          error: 'Cancelled by request',
          completed_at: nowIso(),
          lease_owner: null,
          lease_expires_at: null,
          run_requested_at: null,
        });
      } else {
        await this.d.tasks.transition(t.id, ['in_progress'], 'queued', {
          lease_owner: null,
          lease_expires_at: null,
          run_requested_at: t.run_requested_at ?? nowIso(),
        });
        this.d.logger.info({ taskId: t.id, attempts: t.attempts }, 'interrupted task requeued');
      }
    }
  }
}
