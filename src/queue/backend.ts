// The queue's storage behind one interface. The scheduler has one code path; what differs between
// one process on SQLite and several on PostgreSQL is here: how interrupted work is found (at boot,
// or whenever a lease lapses), whether cancels arrive through the database, whether leases can be
// lost to another worker, and how a process hears of new work.
import type { TaskRow, LeaseGuard } from '../db/repositories/tasks.js';
import type { TaskQueueRepo } from '../db/repositories/task-queue.js';
import type { EventBus } from '../events/bus.js';

export type Orphan = TaskRow & { previous_owner: string | null };

export interface QueueBackend {
  /** Several processes share this queue: leases can lapse and be taken over, cancels arrive by row. */
  readonly shared: boolean;
  /** How often interrupted work is looked for again after the first pass at start (null: never). */
  readonly recoverEveryMs: number | null;
  /** Takes the next runnable task (FIFO), never one in `exclude`; atomic against every other claimer. */
  claim(owner: string, leaseMs: number, globalLimit: number, exclude: readonly number[]): Promise<TaskRow | undefined>;
  /** Extends a claim's lease; false when that claim no longer holds the task. */
  renew(id: number, lease: LeaseGuard, leaseMs: number): Promise<boolean>;
  /** In-progress tasks nobody runs any more, now held by `owner`, with the owner they had. */
  orphans(owner: string, leaseMs: number, exclude: readonly number[]): Promise<Orphan[]>;
  /** Tasks `owner` runs that someone asked to cancel through the database. */
  cancelsFor(owner: string): Promise<number[]>;
  /** When the earliest delayed task becomes runnable. */
  nextNotBefore(): Promise<string | undefined>;
}

/** Claims, leases and delays are the same SQL on both engines (the repository branches where needed). */
abstract class RepoQueue {
  constructor(protected readonly repo: TaskQueueRepo) {}
  claim(owner: string, leaseMs: number, globalLimit: number, exclude: readonly number[]) {
    return this.repo.claimNext(owner, leaseMs, new Date(), globalLimit, exclude);
  }
  renew(id: number, lease: LeaseGuard, leaseMs: number) {
    return this.repo.renewLease(id, lease, leaseMs);
  }
  nextNotBefore() {
    return this.repo.nextNotBefore();
  }
}

/** One process on a SQLite file: everything in progress at boot that is not ours was interrupted. */
export class LocalQueue extends RepoQueue implements QueueBackend {
  readonly shared = false;
  readonly recoverEveryMs = null;

  async orphans(owner: string): Promise<Orphan[]> {
    return (await this.repo.orphans(owner)).map((t) => ({ ...t, previous_owner: t.lease_owner }));
  }
  /** Cancels reach the one process directly (RunningTasks.cancel). */
  async cancelsFor(): Promise<number[]> {
    return [];
  }
}

/**
 * Several processes on PostgreSQL: a task is interrupted when its lease lapses, whenever that is;
 * a cancel sent to another process arrives as the row's flag; new work is announced by the shared
 * event feed (every task_status event wakes this process's claim loop).
 */
export class SharedQueue extends RepoQueue implements QueueBackend {
  readonly shared = true;
  readonly recoverEveryMs: number;
  constructor(repo: TaskQueueRepo, leaseMs: number, wake: { bus: EventBus; notify: () => void } | null) {
    super(repo);
    this.recoverEveryMs = Math.max(1000, Math.floor(leaseMs / 4));
    wake?.bus.on('stream', (row) => {
      if (row.kind === 'task_status') wake.notify();
    });
  }
  orphans(owner: string, leaseMs: number, exclude: readonly number[]): Promise<Orphan[]> {
    return this.repo.takeOverExpired(owner, leaseMs, [...exclude]);
  }
  cancelsFor(owner: string): Promise<number[]> {
    return this.repo.cancelRequested(owner);
  }
}
