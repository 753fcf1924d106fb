import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { TaskRow, TasksRepo } from '../db/repositories/tasks.js';
import type { RunRow, RunsRepo } from '../db/repositories/runs.js';
import type { TaskService } from '../tasks/service.js';
import { nowIso } from '../db/time.js';
import { coerceError } from '../errors.js';
import { scrubDeep } from '../secrets.js';
import { handsBack, type ExecContext, type ExecResult, type Executor, type StartGate } from './types.js';
import type { RunningEntry, RunningTasks } from './running.js';
import type { QueueBackend } from './backend.js';

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

  constructor(
    private readonly deps: SchedulerDeps,
    private readonly opts: SchedulerOptions,
  ) {
    this.running = deps.running;
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

  // Tasks left in_progress by a process that is gone go back to the queue (or fail after too many attempts).
  // One process (SQLite): every in_progress task not ours is an orphan, checked once at start.
  // Several (PostgreSQL): a task is an orphan when its lease has lapsed; any worker may take it over,
  // and the loop keeps checking, because a worker can die at any time.
  // One pass at a time: the loop and a caller (start, a test) may ask at once, and a second pass must
  // see what the first one did (a task it took over is ours by then, not an orphan to skip).
  recover(): Promise<void> {
    const pass = this.recovering.then(() => this.recoverPass());
    this.recovering = pass.catch(() => {});
    return pass;
  }

  private recovering: Promise<void> = Promise.resolve();

  private async recoverPass(): Promise<void> {
    const orphans = await this.deps.queue.orphans(this.owner, this.opts.leaseMs, this.running.ids());
    for (const t of orphans) {
      if (this.deps.queue.shared)
        this.deps.logger.warn({ taskId: t.id, previousOwner: t.previous_owner }, 'task lease lapsed: taking the task over');
      // An agent of the dead process may still be running in its own process group: stop it first.
      // Only an agent on this host can be reached (pids of other hosts mean nothing here).
      // Awaited: the task may run again only once nothing of its previous run is left.
      for (const r of await this.deps.runs.open(t.id)) {
        if ((r.pid || r.proc_mark) && (!r.host || r.host === hostname())) {
          await this.deps
            .reapAgent(r)
            .catch((err) => this.deps.logger.warn({ err: coerceError(err), taskId: t.id }, 'could not reap a leftover agent'));
        }
      }
      await this.deps.runs.closeOpen(t.id, 'interrupted', 'Factory stopped while the agent was running');
      if (t.attempts >= this.opts.maxAttempts) {
        const errors = (await this.deps.runs.forTask(t.id)).filter((r) => r.error).map((r) => `attempt ${r.attempt}: ${r.error}`);
        await this.deps.tasks.transition(t.id, ['in_progress'], 'failed', {
          error: `Gave up after ${t.attempts} attempts (max ${this.opts.maxAttempts}). ${errors.join('; ')}`.trim(),
          completed_at: nowIso(),
          lease_owner: null,
          lease_expires_at: null,
          run_requested_at: null,
        });
        this.deps.logger.warn({ taskId: t.id, attempts: t.attempts }, 'interrupted task failed: too many attempts');
      } else if (t.cancel_requested) {
        // Someone asked to cancel it while its worker was dying: honour that instead of running it again.
        await this.deps.tasks.transition(t.id, ['in_progress'], 'cancelled', {
          error: 'Cancelled by request',
          completed_at: nowIso(),
          lease_owner: null,
          lease_expires_at: null,
          run_requested_at: null,
        });
      } else {
        await this.deps.tasks.transition(t.id, ['in_progress'], 'queued', {
          lease_owner: null,
          lease_expires_at: null,
          run_requested_at: t.run_requested_at ?? nowIso(),
        });
        this.deps.logger.info({ taskId: t.id, attempts: t.attempts }, 'interrupted task requeued');
      }
    }
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
    const lease = { owner: this.owner, attempts: task.attempts };
    let renewedAt = Date.now();
    let nextRenewal = renewedAt + Math.max(1000, Math.floor(this.opts.leaseMs / 3));
    const stop = (reason: 'lease_lost' | 'lease_unconfirmed') => {
      if (this.deps.queue.shared && !entry.reason) {
        entry.reason = reason;
        controller.abort(reason);
      }
    };
    let renewing = false;
    // Renews every third of the lease; checks every tenth whether the lease is still confirmed. A
    // renewal is asynchronous: one the database does not answer leaves the check below to act.
    const heartbeat = setInterval(
      () => {
        if (Date.now() >= nextRenewal && !renewing) {
          nextRenewal = Date.now() + Math.max(1000, Math.floor(this.opts.leaseMs / 3));
          const sentAt = Date.now();
          renewing = true;
          void Promise.resolve()
            .then(() => this.deps.queue.renew(task.id, lease, this.opts.leaseMs))
            .then(
              (held) => {
                if (held) renewedAt = sentAt;
                else {
                  this.deps.logger.warn({ taskId: task.id }, 'lease renewal found no row held by this claim');
                  // Another worker took the task over (this one was cut off for longer than a lease): stop
                  // this copy so the task never runs twice.
                  stop('lease_lost');
                }
              },
              (err: unknown) => this.deps.logger.error({ err: coerceError(err), taskId: task.id }, 'lease renewal failed'),
            )
            .finally(() => {
              renewing = false;
            });
        }
        // Cut off from the database: before the lease can lapse and another worker take the task, stop
        // this copy and hand the task back (the work so far goes out as a checkpoint).
        if (this.deps.queue.shared && !entry.reason && Date.now() - renewedAt > this.opts.leaseMs * 0.8) {
          this.deps.logger.warn({ taskId: task.id }, 'no lease renewal for most of a lease period: stopping the agent');
          stop('lease_unconfirmed');
        }
      },
      Math.max(100, Math.floor(this.opts.leaseMs / 10)),
    );
    heartbeat.unref();
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
        await this.settle(task, entry, result);
      } catch (err) {
        this.deps.logger.error({ err: coerceError(err), taskId: task.id }, 'could not record task result');
      }
      this.running.delete(task.id);
      this.running.notify();
    })();
  }

  // Records the executor's outcome with a guarded transition out of in_progress.
  private async settle(task: TaskRow, entry: RunningEntry, raw: ExecResult): Promise<void> {
    // Agent text (summary, error, output) is stored and shown everywhere: scrub it once, here.
    const result = scrubDeep(raw);
    const release = { lease_owner: null, lease_expires_at: null } as const;
    const current = await this.deps.repo.get(task.id);
    if (!current || current.status !== 'in_progress') return;
    if (current.lease_owner !== this.owner || current.attempts !== task.attempts) {
      this.deps.logger.warn({ taskId: task.id, owner: current.lease_owner }, 'result not recorded: another claim holds the task now');
      return;
    }
    const lease = { owner: this.owner, attempts: task.attempts };
    if (entry.reason === 'cancel' || current.cancel_requested) {
      await this.deps.tasks.transition(
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
    if (handsBack(entry.reason) && result.status !== 'in_review' && result.status !== 'done') {
      // Not the task's fault: hand it to the next boot without counting the attempt.
      await this.cancelIfAsked(
        await this.deps.tasks.transition(
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
        await this.deps.tasks.transition(
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
          await this.deps.tasks.transition(
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
          await this.deps.tasks.transition(
            task.id,
            ['in_progress'],
            'waiting_for_input',
            { ...result.patch, ...release, run_requested_at: null },
            lease,
          ),
        );
        return;
      default:
        await this.deps.tasks.transition(
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
    await this.deps.tasks.transition(row.id, ['queued', 'waiting_for_input'], 'cancelled', {
      error: 'Cancelled by request',
      completed_at: nowIso(),
      run_requested_at: null,
    });
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
