import { EventEmitter } from 'node:events';
import type { EventsRepo, EventRow } from '../db/repositories/events.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { TaskStatus } from '../domain/task-status.js';
import type { WorkflowRow } from '../db/repositories/workflows.js';
import { scrubDeep } from '../secrets.js';
import type { AsyncDb } from '../db/query.js';

/** Domain events inside the process. Listeners must not throw; errors are logged by the emitter's owner. */
export interface DomainEvents {
  'task.created': { task: TaskRow };
  'task.status': { task: TaskRow; from: TaskStatus };
  'agent.started': { task: TaskRow; branch: string };
  'task.answered': { task: TaskRow; by: string; response: string };
  'task.question_reminder': { task: TaskRow; question: string };
  /** A preview environment of the task is up at `url` (sent once per url). */
  'task.preview': { task: TaskRow; url: string };
  'workflow.started': { workflow: WorkflowRow };
  'workflow.iteration': { workflow: WorkflowRow; iteration: number; max: number };
  'workflow.completed': { workflow: WorkflowRow };
  'workflow.failed': { workflow: WorkflowRow };
  'workflow.cancelled': { workflow: WorkflowRow };
  /** The PR loop gave up on a task's pull request; a person must look. */
  'task.pr_attention': { task: TaskRow; reason: string };
  /** A run ended on the agent's own usage-limit report; its task waits until `until`. */
  'agent.usage_limit': { task: TaskRow; until: Date; message: string };
  'queue.paused': { until: string | null; reason: string; by: string };
  'queue.resumed': { by: string; reason: string };
  'queue.budget_spent': { spent: number; budget: number; resumesAt: string };
  stream: EventRow;
  /** Another process queued a delivery (PostgreSQL). */
  'outbox.wake': Record<string, never>;
}

export class EventBus {
  private readonly emitter = new EventEmitter();
  constructor(private readonly onListenerError: (err: unknown, event: string) => void = () => {}) {
    this.emitter.setMaxListeners(0);
  }

  on<K extends keyof DomainEvents & string>(event: K, fn: (payload: DomainEvents[K]) => void | Promise<void>): () => void {
    const wrapped = (payload: DomainEvents[K]) => {
      try {
        const r = fn(payload);
        if (r && typeof (r as Promise<void>).catch === 'function') (r as Promise<void>).catch((e) => this.onListenerError(e, event));
      } catch (err) {
        this.onListenerError(err, event);
      }
    };
    this.emitter.on(event, wrapped);
    return () => this.emitter.off(event, wrapped);
  }

  emit<K extends keyof DomainEvents & string>(event: K, payload: DomainEvents[K]): void {
    this.emitter.emit(event, payload);
  }
}

/**
 * Persists a live-stream event (so it can be replayed by id) and fans it out in-process. With
 * `fanOut` false (PostgreSQL), the event feed delivers it instead, together with the events of the
 * other processes, so every listener sees one ordered stream.
 */
export class StreamPublisher {
  constructor(
    private readonly repo: EventsRepo,
    private readonly bus: EventBus,
    private readonly fanOut = true,
  ) {}

  /** Stores and fans out one event. */
  async publish(kind: string, taskId: number | null, payload: unknown): Promise<EventRow> {
    const row = await this.repo.append(kind, taskId, scrubDeep(payload));
    this.deliver(row);
    return row;
  }

  /** Stores an event inside the caller's transaction; the caller delivers it after the commit. */
  record(tx: AsyncDb, kind: string, taskId: number | null, payload: unknown): Promise<EventRow> {
    // The stream is stored and served to browsers: the one scrubber runs on every payload.
    return this.repo.in(tx).append(kind, taskId, scrubDeep(payload));
  }

  /** Fans a stored event out in this process (unless the PostgreSQL feed does it for every process). */
  deliver(row: EventRow): void {
    if (this.fanOut) this.bus.emit('stream', row);
  }
}
