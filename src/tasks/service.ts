import type { LeaseGuard, TaskPatch, TaskRow, TasksRepo, NewTask } from '../db/repositories/tasks.js';
import { canTransition, type TaskStatus } from '../domain/task-status.js';
import type { EventBus, StreamPublisher } from '../events/bus.js';

/** The task fields published on the live stream when a status changes. */
export function taskStreamPayload(t: TaskRow, from: TaskStatus | null) {
  return {
    id: t.id,
    title: t.title,
    repo: t.repo,
    agent_type: t.agent_type,
    status: t.status,
    previous_status: from,
    workflow_id: t.workflow_id,
    pr_url: t.pr_url,
    preview_url: t.preview_url,
    error: t.error,
    cost_usd: t.cost_usd,
    updated_at: t.updated_at,
  };
}

/** Task writes that other parts must observe go through here, so every status change is checked and published. */
export class TaskService {
  constructor(
    readonly repo: TasksRepo,
    private readonly bus: EventBus,
    private readonly stream: StreamPublisher,
  ) {}

  create(input: NewTask): TaskRow {
    // Inserted not yet runnable: listeners may adjust the new row (revision mode) and its creation is
    // published before any worker, in this process or another, can claim it.
    const created = this.repo.create({ ...input, run: false });
    this.bus.emit('task.created', { task: created });
    let task = this.repo.get(created.id) ?? created;
    this.stream.publish('task_status', task.id, taskStreamPayload(task, null));
    if (input.run && !input.inReview) task = this.repo.requestRun(task.id) ?? task;
    return task;
  }

  get(id: number): TaskRow | undefined {
    return this.repo.get(id);
  }

  /**
   * Moves a task from one of `from` to `to`, if that transition is legal and the row is still in `from`.
   * Returns undefined when another writer got there first.
   */
  transition(id: number, from: readonly TaskStatus[], to: TaskStatus, patch: TaskPatch = {}, lease?: LeaseGuard): TaskRow | undefined {
    const legal = from.filter((f) => canTransition(f, to));
    if (legal.length === 0) throw new Error(`illegal task transition ${from.join('|')} -> ${to}`);
    const before = this.repo.get(id);
    if (!before || !legal.includes(before.status)) return undefined;
    const task = this.repo.transition(id, [before.status], to, patch, lease);
    if (!task) return undefined;
    this.bus.emit('task.status', { task, from: before.status });
    this.stream.publish('task_status', task.id, taskStreamPayload(task, before.status));
    return task;
  }

  /** Publishes a status change made by an atomic queue operation (claim). */
  announce(task: TaskRow, from: TaskStatus): void {
    this.bus.emit('task.status', { task, from });
    this.stream.publish('task_status', task.id, taskStreamPayload(task, from));
  }

  update(id: number, patch: TaskPatch): TaskRow | undefined {
    return this.repo.update(id, patch);
  }
}
