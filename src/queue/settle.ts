// Records what an executor said about a task: one guarded transition out of in_progress, only
// while this claim still holds the lease; a cancel that arrived meanwhile wins.
import type { Logger } from 'pino';
import type { TaskPatch, TaskRow, TasksRepo } from '../db/repositories/tasks.js';
import type { TaskStatus } from '../domain/task-status.js';
import type { TaskService } from '../tasks/service.js';
import { nowIso } from '../db/time.js';
import { scrubDeep } from '../secrets.js';
import { handsBack, type AbortReason, type ExecResult } from './types.js';

export interface ResultRecorderDeps {
  tasks: TaskService;
  repo: TasksRepo;
  logger: Logger;
  /** The lease owner name of this process. */
  owner: string;
}

export class ResultRecorder {
  constructor(private readonly d: ResultRecorderDeps) {}

  /** Records the executor's outcome with a guarded transition out of in_progress. */
  async record(task: TaskRow, reason: AbortReason | undefined, raw: ExecResult): Promise<void> {
    // Agent text (summary, error, output) is stored and shown everywhere: scrub it once, here.
    const result = scrubDeep(raw);
    const current = await this.d.repo.get(task.id);
    if (!current || current.status !== 'in_progress') return;
    if (current.lease_owner !== this.d.owner || current.attempts !== task.attempts) {
      this.d.logger.warn({ taskId: task.id, owner: current.lease_owner }, 'result not recorded: another claim holds the task now');
      return;
    }
    const { to, patch } = settlement(result, reason, current);
    const row = await this.d.tasks.transition(task.id, ['in_progress'], to, patch, { owner: this.d.owner, attempts: task.attempts });
    if (to === 'queued' || to === 'waiting_for_input') await this.cancelIfAsked(row);
  }

  // A cancel that arrived while the result was being recorded (another process flagged the row):
  // the task must not sit in the queue with a flag that keeps it from ever being claimed.
  private async cancelIfAsked(row: TaskRow | undefined): Promise<void> {
    if (!row?.cancel_requested) return;
    await this.d.tasks.transition(row.id, ['queued', 'waiting_for_input'], 'cancelled', {
      error: 'Cancelled by request',
      completed_at: nowIso(),
      run_requested_at: null,
    });
  }
}

const RELEASE = { lease_owner: null, lease_expires_at: null } as const;
/** What ends a task's run for good: the claim released, no run requested any more. */
const ENDED = () => ({ ...RELEASE, completed_at: nowIso(), run_requested_at: null });

/** The status a run's result moves its task to, and what is written with it. */
function settlement(result: ExecResult, reason: AbortReason | undefined, current: TaskRow): { to: TaskStatus; patch: TaskPatch } {
  const uncounted = Math.max(0, current.attempts - 1);
  if (reason === 'cancel' || current.cancel_requested)
    return { to: 'cancelled', patch: { ...result.patch, ...ENDED(), error: 'Cancelled by request' } };
  // Not the task's fault (this process stops, or lost the database): back to the queue, the attempt not counted.
  if (handsBack(reason) && result.status !== 'in_review' && result.status !== 'done')
    return { to: 'queued', patch: { ...result.patch, ...RELEASE, attempts: uncounted } };
  switch (result.status) {
    case 'failed':
      return { to: 'failed', patch: { ...result.patch, ...ENDED(), error: result.error } };
    case 'queued':
      return {
        to: 'queued',
        patch: {
          ...result.patch,
          ...RELEASE,
          not_before: result.notBefore ? result.notBefore.toISOString() : null,
          attempts: result.countAttempt === false ? uncounted : current.attempts,
        },
      };
    case 'waiting_for_input':
      return { to: 'waiting_for_input', patch: { ...result.patch, ...RELEASE, run_requested_at: null } };
    default:
      return { to: result.status, patch: { error: '', ...result.patch, ...ENDED() } };
  }
}
