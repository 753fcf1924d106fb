// Records what an executor said about a task: one guarded transition out of in_progress, only
// while this claim still holds the lease; a cancel that arrived meanwhile wins.
import type { Logger } from 'pino';
import type { TaskRow, TasksRepo } from '../db/repositories/tasks.js';
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
    const release = { lease_owner: null, lease_expires_at: null } as const;
    const current = await this.d.repo.get(task.id);
    if (!current || current.status !== 'in_progress') return;
    if (current.lease_owner !== this.d.owner || current.attempts !== task.attempts) {
      this.d.logger.warn({ taskId: task.id, owner: current.lease_owner }, 'result not recorded: another claim holds the task now');
      return;
    }
    const lease = { owner: this.d.owner, attempts: task.attempts };
    if (reason === 'cancel' || current.cancel_requested) {
      await this.d.tasks.transition(
        task.id,
        ['in_progress'],
        'cancelled',
        {
          ...result.patch,
          ...release,
          error: 'Cancelled by request',
          completed_at: nowIso(),
          run_requested_at: null,
        },
        lease,
      );
      return;
    }
    if (handsBack(reason) && result.status !== 'in_review' && result.status !== 'done') {
      // Not the task's fault: hand it to the next boot without counting the attempt.
      await this.cancelIfAsked(
        await this.d.tasks.transition(
          task.id,
          ['in_progress'],
          'queued',
          {
            ...result.patch,
            ...release,
            attempts: Math.max(0, current.attempts - 1),
          },
          lease,
        ),
      );
      return;
    }
    switch (result.status) {
      case 'failed':
        await this.d.tasks.transition(
          task.id,
          ['in_progress'],
          'failed',
          {
            ...result.patch,
            ...release,
            error: result.error,
            completed_at: nowIso(),
            run_requested_at: null,
          },
          lease,
        );
        return;
      case 'queued':
        await this.cancelIfAsked(
          await this.d.tasks.transition(
            task.id,
            ['in_progress'],
            'queued',
            {
              ...result.patch,
              ...release,
              not_before: result.notBefore ? result.notBefore.toISOString() : null,
              attempts: result.countAttempt === false ? Math.max(0, current.attempts - 1) : current.attempts,
            },
            lease,
          ),
        );
        return;
      case 'waiting_for_input':
        await this.cancelIfAsked(
          await this.d.tasks.transition(
            task.id,
            ['in_progress'],
            'waiting_for_input',
            { ...result.patch, ...release, run_requested_at: null },
            lease,
          ),
        );
        return;
      default:
        await this.d.tasks.transition(
          task.id,
          ['in_progress'],
          result.status,
          {
            error: '',
            ...result.patch,
            ...release,
            completed_at: nowIso(),
            run_requested_at: null,
          },
          lease,
        );
    }
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
