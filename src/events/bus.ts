import { EventEmitter } from 'node:events';
import type { EventsRepo, EventRow } from '../db/repositories/events.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { TaskStatus } from '../domain/task-status.js';
import type { WorkflowRow } from '../db/repositories/workflows.js';
import { scrubDeep } from '../secrets.js';
import type { AsyncDb } from '../db/query.js';
import { KeyedSerial } from '../async/serial.js';
import type { ProtocolObject } from '../agents/protocol.js';

/** Domain events inside the process. Listeners must not throw; errors are logged by the emitter's owner. */
export interface DomainEvents {
  'task.created': { task: TaskRow };
  'task.status': { task: TaskRow; from: TaskStatus };
  'agent.started': { task: TaskRow; branch: string };
  /** A running agent said something (progress notes go to Plane). */
  'agent.text': { task: TaskRow; text: string };
  /** A running agent posted a message to the board (a protocol object of type "message"). */
  'agent.message': { task: TaskRow; message: ProtocolObject };
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

/** Stores one stream event inside the transaction it was given to. */
export type RecordEvent = (kind: string, taskId: number | null, payload: unknown) => Promise<EventRow>;

/**
 * Persists live-stream events (so they can be replayed by id) and fans them out in-process. With
 * `fanOut` false (PostgreSQL), the event feed delivers them instead, together with the events of
 * the other processes, so every listener sees one ordered stream.
 *
 * Every event is written by write(): the state change it reports and the event commit in one
 * transaction, and this process runs one such transaction at a time. On PostgreSQL event writers
 * queue on one advisory lock anyway (see EventsRepo.append); queueing here first means a lock held
 * elsewhere keeps one pooled connection waiting, not all of them, so reads (/health) still get one.
 */
export class StreamPublisher {
  private readonly serial = new KeyedSerial();

  constructor(
    private readonly db: AsyncDb,
    private readonly repo: EventsRepo,
    private readonly bus: EventBus,
    private readonly fanOut = true,
  ) {}

  /** Runs fn in one transaction; the events it records commit with it and are delivered after. */
  write<T>(fn: (tx: AsyncDb, record: RecordEvent) => Promise<T>): Promise<T> {
    return this.serial.run('events', async () => {
      const rows: EventRow[] = [];
      const result = await this.db.transaction((tx) =>
        fn(tx, async (kind, taskId, payload) => {
          // The stream is stored and served to browsers: the one scrubber runs on every payload.
          const row = await this.repo.in(tx).append(kind, taskId, scrubDeep(payload));
          rows.push(row);
          return row;
        }),
      );
      if (this.fanOut) for (const row of rows) this.bus.emit('stream', row);
      return result;
    });
  }

  /** Stores and fans out one event. */
  publish(kind: string, taskId: number | null, payload: unknown): Promise<EventRow> {
    return this.write((_tx, record) => record(kind, taskId, payload));
  }
}
