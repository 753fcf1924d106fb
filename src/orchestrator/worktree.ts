// Which worktree a task uses, and removing it when the task no longer needs it.
import type { Logger } from 'pino';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { Workspace } from '../git/workspace.js';
import type { TaskService } from '../tasks/service.js';
import type { RepoSpec } from '../git/repo-spec.js';
import type { LogWriter } from './log-writer.js';
import { coerceError } from '../errors.js';

/** A workflow's steps share one worktree; a standalone task has its own. */
export function worktreeKey(task: Pick<TaskRow, 'id' | 'workflow_id'>): string {
  return task.workflow_id ? `workflow-${task.workflow_id}` : `task-${task.id}`;
}

export interface WorktreeCleanerDeps {
  workspace: Workspace;
  tasks: TaskService;
  logger: Logger;
}

export class WorktreeCleaner {
  constructor(private readonly d: WorktreeCleanerDeps) {}

  /** Removes the task's worktree and local branch; a failure is logged, never thrown (the task's outcome stands). */
  async remove(spec: RepoSpec, task: TaskRow, log?: LogWriter): Promise<void> {
    try {
      await this.d.workspace.remove(spec, worktreeKey(task), task.branch_name || undefined);
      await this.d.tasks.update(task.id, { worktree_path: '' });
      log?.system('worktree removed');
    } catch (err) {
      this.d.logger.warn({ err: coerceError(err), taskId: task.id }, 'could not remove worktree');
    }
  }
}
