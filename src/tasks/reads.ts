// What the API reads about tasks: lists with their last output line, one task with its runs, its
// log. Reads only; every write goes through TaskService.
import type { TaskListQuery, TaskSummary, TasksRepo } from '../db/repositories/tasks.js';
import type { LogRow, LogsRepo } from '../db/repositories/logs.js';
import type { RunRow, RunsRepo } from '../db/repositories/runs.js';

export class TaskReads {
  constructor(private readonly d: { tasks: TasksRepo; logs: LogsRepo; runs: RunsRepo }) {}

  /** One query: each row carries its last output line (`last_output`), not what only the pipeline reads. */
  list(q: TaskListQuery): Promise<TaskSummary[]> {
    return this.d.tasks.summaries(q);
  }

  /** Every agent run of the task (first run, resumes, CI and review revisions), oldest first. */
  runs(id: number): Promise<RunRow[]> {
    return this.d.runs.forTask(id);
  }

  logs(id: number, opts: { sinceId?: number; sinceTs?: string; limit: number }): Promise<LogRow[]> {
    return this.d.logs.list(id, opts);
  }
}
