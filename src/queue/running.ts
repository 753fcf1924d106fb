// The tasks this process runs right now, and the two signals everyone else sends the queue: "there
// is work" (notify) and "stop this task" (cancel). Built before anything that sends them, so the
// workflow engine, Plane, the PR loop and the routes depend on this and not on the scheduler, which
// is built last (it needs the executor, and the executor needs them).
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { TaskRow, TasksRepo } from '../db/repositories/tasks.js';
import type { TaskService } from '../tasks/service.js';
import { nowIso } from '../db/time.js';
import type { AbortReason } from './types.js';

export interface RunningAgent {
  task_id: number;
  task_title: string;
  agent_type: string;
  repo: string;
  status: 'running';
  started_at: string;
  pid: number | null;
  attempt: number;
}

export interface RunningEntry {
  task: TaskRow;
  controller: AbortController;
  reason?: AbortReason;
  startedAt: string;
  pid: number | null;
  done: Promise<void>;
}

/** What the rest of the process may ask of the queue. */
export interface QueueSignals {
  /** Wakes the claim loop early (a task was asked to run). */
  notify(): void;
  /** Cancels a task (see RunningTasks.cancel). */
  cancel(id: number, waitMs: number): Promise<TaskRow | undefined>;
}

export interface RunningTasksDeps {
  tasks: TaskService;
  repo: TasksRepo;
  /** Several processes share the queue: a task running elsewhere is cancelled through its row. */
  distributed: boolean;
  pollMs: number;
}

export class RunningTasks implements QueueSignals {
  /** This process's name on the leases it holds. */
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly entries = new Map<number, RunningEntry>();
  private wake: (() => void) | null = null;
  private woken = false;

  constructor(private readonly d: RunningTasksDeps) {}

  add(entry: RunningEntry): void {
    this.entries.set(entry.task.id, entry);
  }
  delete(id: number): void {
    this.entries.delete(id);
  }
  get(id: number): RunningEntry | undefined {
    return this.entries.get(id);
  }
  ids(): number[] {
    return [...this.entries.keys()];
  }
  all(): RunningEntry[] {
    return [...this.entries.values()];
  }
  count(): number {
    return this.entries.size;
  }
  isRunning(id: number): boolean {
    return this.entries.has(id);
  }

  agents(): RunningAgent[] {
    return this.all().map((r) => ({
      task_id: r.task.id,
      task_title: r.task.title,
      agent_type: r.task.agent_type,
      repo: r.task.repo,
      status: 'running',
      started_at: r.startedAt,
      pid: r.pid,
      attempt: r.task.attempts,
    }));
  }

  notify(): void {
    if (this.wake) this.wake();
    else this.woken = true;
  }

  /** The claim loop's sleep: ends after ms, or at the first notify() (also one sent since the last sleep). */
  sleep(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  /**
   * Cancels a task. A queued or waiting task becomes cancelled at once; a running one has its
   * executor aborted and this resolves when the run has ended (or after waitMs).
   */
  async cancel(id: number, waitMs: number): Promise<TaskRow | undefined> {
    const entry = this.entries.get(id);
    if (entry) {
      await this.d.repo.update(id, { cancel_requested: 1 });
      entry.reason ??= 'cancel';
      entry.controller.abort('cancel');
      await Promise.race([entry.done, new Promise((r) => setTimeout(r, waitMs).unref())]);
      return this.d.repo.get(id);
    }
    // Not running here. Queued or waiting: cancel it now. Running in another process (another
    // worker): flag it; whoever runs it stops it within a poll interval, and the answer waits for
    // that like for a local run. A claim or a requeue racing with us only means another round.
    const deadline = Date.now() + waitMs;
    for (;;) {
      const t = await this.d.repo.get(id);
      if (!t) return undefined;
      if (t.status === 'queued' || t.status === 'waiting_for_input') {
        const done = await this.d.tasks.transition(id, ['queued', 'waiting_for_input'], 'cancelled', {
          error: 'Cancelled by request',
          completed_at: nowIso(),
          run_requested_at: null,
          cancel_requested: 1,
        });
        if (done) return done;
      } else if (t.status !== 'in_progress') {
        return t;
      } else if (!t.cancel_requested) {
        await this.d.repo.update(id, { cancel_requested: 1 });
      }
      if (Date.now() >= deadline || (!this.d.distributed && t.status === 'in_progress')) return this.d.repo.get(id);
      await new Promise((r) => setTimeout(r, Math.min(200, this.d.pollMs)).unref());
    }
  }
}
