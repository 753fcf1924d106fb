// The core every process has: the database, repositories, events, the task lifecycle and the queue's
// signals. The composition root (root.ts) builds this first and everything else on top of it.
import type { Logger } from 'pino';
import { secretValues, type Config } from '../config.js';
import { openDb, type Db } from '../db/connection.js';
import { TasksRepo } from '../db/repositories/tasks.js';
import { TaskQueueRepo } from '../db/repositories/task-queue.js';
import { LogsRepo } from '../db/repositories/logs.js';
import { RunsRepo } from '../db/repositories/runs.js';
import { EventsRepo } from '../db/repositories/events.js';
import { KvRepo } from '../db/repositories/kv.js';
import { WorkersRepo } from '../db/repositories/workers.js';
import { EventBus, StreamPublisher } from '../events/bus.js';
import type { PgEventFeed } from '../events/pg-feed.js';
import { TaskService } from '../tasks/service.js';
import { TaskTokens } from '../auth/task-token.js';
import { QueueControl } from '../queue/control.js';
import { RunningTasks } from '../queue/running.js';
import { registerSecrets } from '../secrets.js';
import { coerceError } from '../errors.js';
import { adoptOpenPullRequest } from '../workflows/revision.js';
import { Lifecycle } from './lifecycle.js';
import { TaskReads } from '../tasks/reads.js';
import { SystemStatus } from '../health/status.js';

export interface Core {
  config: Config;
  logger: Logger;
  db: Db;
  repos: { tasks: TasksRepo; queue: TaskQueueRepo; logs: LogsRepo; runs: RunsRepo; events: EventsRepo; kv: KvRepo; workers: WorkersRepo };
  /** This process runs agents (role all or worker). */
  runsAgents: boolean;
  /** This process runs the one-per-installation parts: deliveries, pollers, reconciliation (role all or api). */
  runsSingletons: boolean;
  bus: EventBus;
  stream: StreamPublisher;
  /** On PostgreSQL: every process hears every stream event through LISTEN. */
  feed: PgEventFeed | null;
  /** Pauses, resumes and the daily budget: the scheduler's start gate. */
  queue: QueueControl;
  tasks: TaskService;
  /** What the API reads about tasks (lists, runs, logs). */
  reads: TaskReads;
  /** Counts, agents across workers, the process registry, analytics. */
  status: SystemStatus;
  /** The tasks this process runs; wakes and cancels for everyone else. */
  running: RunningTasks;
  taskTokens: TaskTokens;
  /** Start, stop and /health parts, registered by the root in build order. */
  lifecycle: Lifecycle;
}

export async function buildCore(config: Config, logger: Logger): Promise<Core> {
  // Before anything can log or answer: every configured secret is known to the one scrubber.
  registerSecrets(secretValues(config));
  const db = await openDb(config.database.url, {
    statementTimeoutMs: config.database.statement_timeout_seconds * 1000,
    applicationName: `factory-${config.role}`,
  });
  const distributed = db.dialect === 'postgres';
  const repos = {
    tasks: new TasksRepo(db),
    queue: new TaskQueueRepo(db),
    logs: new LogsRepo(db),
    runs: new RunsRepo(db),
    events: new EventsRepo(db),
    kv: new KvRepo(db),
    workers: new WorkersRepo(db),
  };
  const bus = new EventBus((err, event) => logger.error({ err: coerceError(err), event }, 'event listener failed'));
  // On PostgreSQL every process hears every event (its own included) through LISTEN, in id order.
  const feed = distributed
    ? new (await import('../events/pg-feed.js')).PgEventFeed(
        config.database.url,
        repos.events,
        bus,
        logger.child({ component: 'event-feed' }),
      )
    : null;
  const stream = new StreamPublisher(db, repos.events, bus, !feed);
  const tasks = new TaskService(repos.tasks, bus, stream, adoptOpenPullRequest);
  const running = new RunningTasks({ tasks, repo: repos.tasks, distributed, pollMs: config.queue.poll_interval_ms });
  return {
    config,
    logger,
    db,
    repos,
    runsAgents: config.role !== 'api',
    runsSingletons: config.role !== 'worker',
    bus,
    stream,
    feed,
    queue: new QueueControl({ kv: repos.kv, runs: repos.runs, bus, dailyBudgetUsd: config.budgets.daily_usd }),
    tasks,
    reads: new TaskReads(repos),
    status: new SystemStatus({ db, tasks: repos.tasks, runs: repos.runs, workers: repos.workers, running }),
    running,
    taskTokens: await TaskTokens.load(repos.kv),
    lifecycle: new Lifecycle(logger),
  };
}
