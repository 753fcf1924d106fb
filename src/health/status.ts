// What the system routes report beyond one task: queue counts, running agents across workers, the
// process registry, and the upstream analytics and stats summaries.
import type { AsyncDb, Dialect } from '../db/query.js';
import type { TasksRepo } from '../db/repositories/tasks.js';
import type { RunsRepo } from '../db/repositories/runs.js';
import type { WorkerRow, WorkersRepo } from '../db/repositories/workers.js';
import { StatsRepo } from '../db/repositories/stats.js';
import { analytics } from '../db/repositories/analytics.js';
import type { RunningAgent, RunningTasks } from '../queue/running.js';

export interface AgentOnWorker extends Omit<RunningAgent, 'started_at'> {
  started_at: string | null;
  host: string;
  worker_id: string | null;
}

export class SystemStatus {
  private readonly stats: StatsRepo;

  constructor(private readonly d: { db: AsyncDb; tasks: TasksRepo; runs: RunsRepo; workers: WorkersRepo; running: RunningTasks }) {
    this.stats = new StatsRepo(d.db);
  }

  get dialect(): Dialect {
    return this.d.db.dialect;
  }

  counts() {
    return this.d.tasks.counts();
  }

  /** This process's agents (SQLite), or every worker's from the database (PostgreSQL). */
  async agents(): Promise<RunningAgent[] | AgentOnWorker[]> {
    if (this.d.db.dialect === 'sqlite') return this.d.running.agents();
    const running = await this.d.tasks.byStatus('in_progress');
    const open = await Promise.all(running.map((t) => this.d.runs.open(t.id)));
    return running.map((t, i) => {
      const run = open[i]!.at(-1);
      return {
        task_id: t.id,
        task_title: t.title,
        agent_type: t.agent_type,
        repo: t.repo,
        status: 'running' as const,
        started_at: run?.started_at ?? t.started_at,
        pid: run?.pid ?? null,
        attempt: t.attempts,
        host: run?.host ?? '',
        worker_id: t.lease_owner,
      };
    });
  }

  /** Processes that sent a heartbeat since `since`. */
  workers(since: string): Promise<WorkerRow[]> {
    return this.d.workers.list(since);
  }

  analytics() {
    return analytics(this.d.db);
  }

  statsSince(since: string) {
    return this.stats.summary(since);
  }
}
