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

/**
 * Adjusts a task just created, before it becomes runnable (revision mode: a new task for a Plane
 * issue continues the open PR of an earlier one). Runs inside the creating transaction.
 */
export type TaskAdopter = (task: TaskRow, tasks: TasksRepo) => Promise<void>;

/** Task writes that other parts must observe go through here, so every status change is checked and published. */
export class TaskService {
  constructor(
    readonly repo: TasksRepo,
    private readonly bus: EventBus,
    private readonly stream: StreamPublisher,
    private readonly adopt: TaskAdopter = async () => {},
  ) {}

  /**
   * Creation, its adjustment and its event are one transaction, and the task becomes runnable only
   * after it: no worker, in this process or another, can claim it before its creation is published.
   */
  async create(input: NewTask): Promise<TaskRow> {
    const task = await this.stream.write(async (tx, record) => {
      const repo = this.repo.in(tx);
      const created = await repo.create({ ...input, run: false });
      await this.adopt(created, repo);
      const task = (await repo.get(created.id)) ?? created;
      await record('task_status', task.id, taskStreamPayload(task, null));
      return task;
    });
    this.bus.emit('task.created', { task });
    if (input.run && !input.inReview) return (await this.repo.requestRun(task.id)) ?? task;
    return task;
  }

  /** Marks a queued task runnable; the scheduler takes tasks in the order of these requests. */
  requestRun(id: number): Promise<TaskRow | undefined> {
    return this.repo.requestRun(id);
  }

  get(id: number): Promise<TaskRow | undefined> {
    return this.repo.get(id);
  }

  /**
   * Moves a task from one of `from` to `to`, if that transition is legal and the row is still in `from`.
   * Returns undefined when another writer got there first. The change and its stream event commit together.
   */
  async transition(
    id: number,
    from: readonly TaskStatus[],
    to: TaskStatus,
    patch: TaskPatch = {},
    lease?: LeaseGuard,
  ): Promise<TaskRow | undefined> {
    const legal = from.filter((f) => canTransition(f, to));
    if (legal.length === 0) throw new Error(`illegal task transition ${from.join('|')} -> ${to}`);
    const done = await this.stream.write(async (tx, record) => {
      const repo = this.repo.in(tx);
      const before = await repo.get(id);
      if (!before || !legal.includes(before.status)) return undefined;
      const task = await repo.transition(id, [before.status], to, patch, lease);
      if (!task) return undefined;
      await record('task_status', task.id, taskStreamPayload(task, before.status));
      return { task, from: before.status };
    });
    if (!done) return undefined;
    this.bus.emit('task.status', { task: done.task, from: done.from });
    return done.task;
  }

  /** Publishes a status change made by an atomic queue operation (claim). */
  async announce(task: TaskRow, from: TaskStatus): Promise<void> {
    await this.stream.publish('task_status', task.id, taskStreamPayload(task, from));
    this.bus.emit('task.status', { task, from });
  }

  update(id: number, patch: TaskPatch): Promise<TaskRow | undefined> {
    return this.repo.update(id, patch);
  }
}
