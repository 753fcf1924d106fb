import type { Logger } from 'pino';
import type { TaskRow, TasksRepo } from '../db/repositories/tasks.js';
import type { RunRow, RunsRepo } from '../db/repositories/runs.js';
import type { TaskService } from '../tasks/service.js';
import { nowIso } from '../db/time.js';
import { coerceError } from '../errors.js';
import { type ExecContext, type ExecResult, type Executor, type StartGate } from './types.js';
import type { RunningEntry, RunningTasks } from './running.js';
import type { QueueBackend } from './backend.js';
import { keepLease } from './lease.js';
import { ResultRecorder } from './settle.js';
import { Recovery } from './recovery.js';

export interface SchedulerDeps {
  tasks: TaskService;
  repo: TasksRepo;
  /** Claims, leases, recovery and cancels through the database (SQLite alone, or shared PostgreSQL). */
  queue: QueueBackend;
  runs: RunsRepo;
  logger: Logger;
  /** Runs one claimed task (the agent pipeline). */
  executor: Executor;
  /** The tasks this process runs, and the wake-up signal of the claim loop. */
  running: RunningTasks;
  /** Whether new work may start now (pauses, budgets). */
  gate: StartGate;
  /** Ends what is left of an agent from a previous run of this process (boot recovery). */
  reapAgent: (run: Pick<RunRow, 'pid' | 'proc_mark'>) => Promise<void>;
}

export interface SchedulerOptions {
  maxConcurrent: number;
  maxAttempts: number;
  leaseMs: number;
  pollMs: number;
  /** Agents on all hosts together (0 = no global limit). */
  globalLimit?: number;
}

/**
 * Takes runnable tasks from the durable queue, never more than maxConcurrent at once, FIFO by the
 * time they were asked to run. Claims are one atomic UPDATE, so two claimers can never take the same task.
 */
export class Scheduler {
  private readonly running: RunningTasks;
  private stopping = false;
  private started = false;
  private loopPromise: Promise<void> | null = null;
  private stopPromise: Promise<void> | null = null;
  /** How many times the loop has looked for work (lets tests observe that it did, without sleeping). */
  passes = 0;

  private readonly results: ResultRecorder;
  private readonly recovery: Recovery;

  constructor(
    private readonly deps: SchedulerDeps,
    private readonly opts: SchedulerOptions,
  ) {
    this.running = deps.running;
    const owner = deps.running.owner;
    this.results = new ResultRecorder({ tasks: deps.tasks, repo: deps.repo, logger: deps.logger, owner });
    this.recovery = new Recovery({ ...deps, owner, leaseMs: opts.leaseMs, maxAttempts: opts.maxAttempts });
  }

  /** Starts the claim loop (run recover() first: Services.start does, once, before its start hooks). Idempotent. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.loopPromise = this.loop();
  }

  /** The lease owner name of this process. */
  get owner(): string {
    return this.running.owner;
  }

  /** Interrupted tasks go back to the queue, fail or end cancelled (see Recovery). One pass at a time. */
  recover(): Promise<void> {
    return this.recovery.recover(this.running.ids());
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      let delay = this.opts.pollMs;
      try {
        delay = await this.fill();
      } catch (err) {
        this.deps.logger.error({ err: coerceError(err) }, 'scheduler loop error');
      }
      if (this.stopping) break;
      await this.running.sleep(delay);
    }
  }

  // Starts as many tasks as there are free slots; returns how long to sleep.
  private async fill(): Promise<number> {
    this.passes++;
    let delay = this.opts.pollMs;
    await this.watchDatabase();
    while (!this.stopping && this.running.count() < this.opts.maxConcurrent) {
      const gate = await this.deps.gate();
      if (!gate.ok) {
        if (gate.retryAt) delay = Math.max(10, Math.min(delay, gate.retryAt - Date.now()));
        return delay;
      }
      // Never a task this process still runs (a copy that lost its lease and has not ended yet).
      const task = await this.deps.queue.claim(this.owner, this.opts.leaseMs, this.opts.globalLimit ?? 0, this.running.ids());
      if (!task) break;
      this.launch(task);
    }
    const next = await this.deps.queue.nextNotBefore();
    if (next) delay = Math.max(10, Math.min(delay, Date.parse(next) - Date.now()));
    return delay;
  }

  private nextRecoverAt = 0;

  // Cancel requests another process took, and leases other workers let lapse (a shared queue).
  private async watchDatabase(): Promise<void> {
    if (this.running.count()) {
      for (const id of await this.deps.queue.cancelsFor(this.owner)) {
        const entry = this.running.get(id);
        if (entry && !entry.reason) {
          this.deps.logger.info({ taskId: id }, 'cancel requested through another process');
          entry.reason = 'cancel';
          entry.controller.abort('cancel');
        }
      }
    }
    const every = this.deps.queue.recoverEveryMs;
    if (every !== null && Date.now() >= this.nextRecoverAt) {
      this.nextRecoverAt = Date.now() + every;
      await this.recover();
    }
  }

  private launch(task: TaskRow): void {
    const controller = new AbortController();
    const entry: RunningEntry = { task, controller, startedAt: nowIso(), pid: null, done: Promise.resolve() };
    this.running.add(entry);
    const heartbeat = keepLease({
      queue: this.deps.queue,
      logger: this.deps.logger,
      task,
      lease: { owner: this.owner, attempts: task.attempts },
      leaseMs: this.opts.leaseMs,
      stop: (reason) => {
        if (this.deps.queue.shared && !entry.reason) {
          entry.reason = reason;
          controller.abort(reason);
        }
      },
      stopped: () => entry.reason !== undefined,
    });
    const ctx: ExecContext = {
      signal: controller.signal,
      abortReason: () => entry.reason,
      setPid: (pid) => {
        entry.pid = pid;
      },
    };
    entry.done = (async () => {
      let result: ExecResult;
      try {
        // The claim already moved the row to in_progress; everyone hears of it before anything else
        // the run publishes.
        await this.deps.tasks
          .announce(task, 'queued')
          .catch((err) => this.deps.logger.warn({ err: coerceError(err), taskId: task.id }, 'could not publish the claim'));
        result = await this.deps.executor(task, ctx);
      } catch (err) {
        result = { status: 'failed', error: coerceError(err).message }; // settle() scrubs every result
      } finally {
        clearInterval(heartbeat);
      }
      try {
        await this.results.record(task, entry.reason, result);
      } catch (err) {
        this.deps.logger.error({ err: coerceError(err), taskId: task.id }, 'could not record task result');
      }
      this.running.delete(task.id);
      this.running.notify();
    })();
  }

  /**
   * Stops claiming, lets running work finish for up to graceMs, then aborts what is left; aborted
   * tasks go back to the queue to be resumed at the next start. Idempotent.
   */
  stop(graceMs: number): Promise<void> {
    this.stopPromise ??= (async () => {
      this.stopping = true;
      this.running.notify();
      await this.loopPromise;
      const all = () => Promise.all(this.running.all().map((r) => r.done));
      if (this.running.count()) {
        await Promise.race([all(), new Promise((r) => setTimeout(r, graceMs).unref())]);
      }
      for (const r of this.running.all()) {
        r.reason ??= 'shutdown';
        r.controller.abort('shutdown');
      }
      await all();
    })();
    return this.stopPromise;
  }
}
