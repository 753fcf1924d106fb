// The contract between the queue and whatever runs a task (the agent pipeline, or a test's stand-in).
import type { TaskPatch, TaskRow } from '../db/repositories/tasks.js';

/** What an executor tells the scheduler when it is done with a task. */
export type ExecResult =
  | { status: 'in_review' | 'done' | 'waiting_for_input'; patch?: TaskPatch }
  | { status: 'failed'; error: string; patch?: TaskPatch }
  /** Put back in the queue; `notBefore` delays it (usage limits, backoff). */
  | { status: 'queued'; notBefore?: Date; patch?: TaskPatch; countAttempt?: boolean };

/**
 * cancel: asked by someone; shutdown: this process stops; lease_lost: another worker has taken the
 * task over; lease_unconfirmed: the lease could not be renewed (database unreachable) for most of a
 * lease period, so another worker may take the task soon (it goes back to the queue like a shutdown).
 */
export type AbortReason = 'cancel' | 'shutdown' | 'lease_lost' | 'lease_unconfirmed';

/** Reasons that hand the task back to the queue for anyone to continue, without counting the attempt. */
export const handsBack = (r: AbortReason | undefined) => r === 'shutdown' || r === 'lease_unconfirmed';

export interface ExecContext {
  signal: AbortSignal;
  /** Why the signal fired, once it has. */
  abortReason(): AbortReason | undefined;
  /** The agent process, for GET /api/agents. */
  setPid(pid: number | null): void;
}

export type Executor = (task: TaskRow, ctx: ExecContext) => Promise<ExecResult>;

/** Decides whether new work may start now (pauses, budgets). */
export type StartGate = () => Promise<{ ok: true } | { ok: false; retryAt?: number; reason: string }>;
