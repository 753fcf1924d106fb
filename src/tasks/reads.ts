// What the API reads about tasks: lists with their last output line, one task with its runs, its
// log. Reads only; every write goes through TaskService.
import type { TaskListQuery, TaskRow, TasksRepo } from '../db/repositories/tasks.js';
import type { LogRow, LogsRepo } from '../db/repositories/logs.js';
import type { RunRow, RunsRepo } from '../db/repositories/runs.js';

export interface TaskWithLastLine {
  task: TaskRow;
  lastLine: string | null;
}

export class TaskReads {
  constructor(private readonly d: { tasks: TasksRepo; logs: LogsRepo; runs: RunsRepo }) {}

  /** One query: the last line is the task row's own `last_output`. */
  async list(q: TaskListQuery): Promise<TaskWithLastLine[]> {
    return (await this.d.tasks.list(q)).map((task) => ({ task, lastLine: task.last_output }));
  }

  /** Every agent run of the task (first run, resumes, CI and review revisions), oldest first. */
  runs(id: number): Promise<RunRow[]> {
    return this.d.runs.forTask(id);
  }

  logs(id: number, opts: { sinceId?: number; sinceTs?: string; limit: number }): Promise<LogRow[]> {
    return this.d.logs.list(id, opts);
  }
}
