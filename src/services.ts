// Builds every long-lived object of the process from a Config. main.ts and the tests share it.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { secretValues, type Config } from './config.js';
import { openDb, type Db } from './db/connection.js';
import { TasksRepo } from './db/repositories/tasks.js';
import { LogsRepo } from './db/repositories/logs.js';
import { RunsRepo } from './db/repositories/runs.js';
import { EventsRepo } from './db/repositories/events.js';
import { KvRepo } from './db/repositories/kv.js';
import { EventBus, StreamPublisher } from './events/bus.js';
import { TaskService } from './tasks/service.js';
import { Scheduler, type Executor } from './queue/scheduler.js';
import { coerceError } from './errors.js';
import { TaskTokens } from './auth/task-token.js';
import { WorkersRepo } from './db/repositories/workers.js';
import { PgEventFeed } from './events/pg-feed.js';
import { registerSecrets } from './secrets.js';
import { LoopMonitor } from './health/loop-monitor.js';
import { QueueControl } from './queue/control.js';
import { reapLeftoverRun } from './agents/reap.js';
import { adoptOpenPullRequest } from './workflows/revision.js';

export interface Services {
  config: Config;
  logger: Logger;
  db: Db;
  repos: { tasks: TasksRepo; logs: LogsRepo; runs: RunsRepo; events: EventsRepo; kv: KvRepo; workers: WorkersRepo };
  /** This process runs agents (role all or worker). */
  runsAgents: boolean;
  /** This process runs the one-per-installation parts: deliveries, pollers, reconciliation (role all or api). */
  runsSingletons: boolean;
  bus: EventBus;
  stream: StreamPublisher;
  /** Pauses, resumes and the daily budget: the scheduler's start gate. */
  queue: QueueControl;
  tasks: TaskService;
  scheduler: Scheduler;
  taskTokens: TaskTokens;
  /** Extra /health fields contributed by optional parts (memory, outbox). */
  health(): Promise<Record<string, unknown>>;
  addHealth(name: string, fn: () => unknown): void;
  /** Hooks run on start (after recovery, before the queue starts), in order. */
  onStart(fn: () => Promise<void> | void): void;
  /** Hooks run on stop, in reverse order of registration. */
  onStop(fn: () => Promise<void> | void): void;
  start(): Promise<void>;
  /** Stops all work (claiming, agents within the grace, outbox, pollers) but keeps the database open for HTTP. */
  stopWork(): Promise<void>;
  /** stopWork(), then closes the database. */
  stop(): Promise<void>;
}

export interface ServiceOptions {
  /** Replaces the agent executor (tests of the queue). */
  executor?: Executor;
}

export async function createServices(config: Config, logger: Logger, opts: ServiceOptions = {}): Promise<Services> {
  // Before anything can log or answer: every configured secret is known to the one scrubber.
  registerSecrets(secretValues(config));
  const db = await openDb(config.database.url, {
    statementTimeoutMs: config.database.statement_timeout_seconds * 1000,
    applicationName: `factory-${config.role}`,
  });
  const distributed = db.dialect === 'postgres';
  const runsAgents = config.role !== 'api';
  const runsSingletons = config.role !== 'worker';
  const repos = {
    tasks: new TasksRepo(db),
    logs: new LogsRepo(db),
    runs: new RunsRepo(db),
    events: new EventsRepo(db),
    kv: new KvRepo(db),
    workers: new WorkersRepo(db),
  };
  const bus = new EventBus((err, event) => logger.error({ err: coerceError(err), event }, 'event listener failed'));
  // On PostgreSQL every process hears every event (its own included) through LISTEN, in id order.
  const feed = distributed ? new PgEventFeed(config.database.url, repos.events, bus, logger.child({ component: 'event-feed' })) : null;
  const stream = new StreamPublisher(db, repos.events, bus, !feed);
  const tasks = new TaskService(repos.tasks, bus, stream, adoptOpenPullRequest);
  const executor: Executor = opts.executor ?? (async () => ({ status: 'failed', error: 'no agent executor configured' }));
  const queue = new QueueControl({ kv: repos.kv, runs: repos.runs, bus, dailyBudgetUsd: config.budgets.daily_usd });
  const scheduler = new Scheduler(
    {
      tasks,
      repo: repos.tasks,
      runs: repos.runs,
      logger,
      executor,
      gate: queue.gate,
      reapAgent: (run) => reapLeftoverRun(run, config.agent.command, logger),
    },
    {
      maxConcurrent: config.max_concurrent_agents,
      maxAttempts: config.queue.max_attempts,
      leaseMs: config.queue.lease_seconds * 1000,
      pollMs: config.queue.poll_interval_ms,
      distributed,
      globalLimit: config.queue.global_max_concurrent,
    },
  );
  const healthParts = new Map<string, () => unknown>();
  const startHooks: Array<() => Promise<void> | void> = [];
  const stopHooks: Array<() => Promise<void> | void> = [];
  let stopping: Promise<void> | null = null;
  let stoppingWork: Promise<void> | null = null;
  const loopMonitor = new LoopMonitor(logger.child({ component: 'event-loop' }));

  // Old task logs go, so a busy install's database does not grow without bound.
  let retentionTimer: NodeJS.Timeout | null = null;
  const purgeLogs = async () => {
    const days = config.retention.task_logs_days;
    if (days <= 0) return;
    try {
      const n = await repos.logs.purgeEnded(new Date(Date.now() - days * 86_400_000).toISOString());
      if (n > 0) logger.info({ removed: n, days }, 'old task logs deleted');
      await repos.workers.purgeOlderThan(new Date(Date.now() - 7 * 86_400_000).toISOString());
    } catch (err) {
      logger.warn({ err: coerceError(err) }, 'task log purge failed');
    }
  };
  const startRetention = () => {
    void purgeLogs();
    retentionTimer ??= setInterval(() => void purgeLogs(), 3_600_000);
    retentionTimer.unref();
  };

  // The process registry behind GET /api/workers.
  let heartbeatTimer: NodeJS.Timeout | null = null;
  const heartbeat = async () => {
    try {
      await repos.workers.heartbeat({
        id: scheduler.owner,
        host: hostname(),
        pid: process.pid,
        role: config.role,
        max_concurrent: runsAgents ? config.max_concurrent_agents : 0,
        running: scheduler.agents().map((a) => a.task_id),
      });
    } catch (err) {
      logger.warn({ err: coerceError(err) }, 'worker heartbeat failed');
    }
  };

  // Workers hear of new runnable work through the shared event feed, not only by polling.
  if (feed && runsAgents)
    bus.on('stream', (row) => {
      if (row.kind === 'task_status') scheduler.notify();
    });

  const services: Services = {
    config,
    logger,
    db,
    repos,
    bus,
    stream,
    queue,
    tasks,
    scheduler,
    taskTokens: await TaskTokens.load(repos.kv),
    runsAgents,
    runsSingletons,
    onStop: (fn) => {
      stopHooks.push(fn);
    },
    onStart: (fn) => {
      startHooks.push(fn);
    },
    // Parts may answer asynchronously (database counts); one that fails says so instead of failing /health.
    health: async () => {
      const parts = await Promise.all(
        [...healthParts].map(async ([k, fn]) => [
          k,
          await Promise.resolve()
            .then(fn)
            .catch((err: unknown) => ({ error: coerceError(err).message })),
        ]),
      );
      return { event_loop: loopMonitor.health(), ...Object.fromEntries(parts) };
    },
    addHealth: (name, fn) => {
      healthParts.set(name, fn);
    },
    async start() {
      loopMonitor.start();
      await feed?.start();
      await heartbeat();
      // One beat at a time: a slow database must not pile them up.
      let beating = false;
      heartbeatTimer = setInterval(() => {
        if (beating) return;
        beating = true;
        void heartbeat().finally(() => (beating = false));
      }, 5000);
      heartbeatTimer.unref();
      if (runsAgents) await scheduler.recover();
      if (runsSingletons) startRetention();
      for (const fn of startHooks) await fn();
      if (runsAgents) scheduler.start();
    },
    stopWork() {
      stoppingWork ??= (async () => {
        if (retentionTimer) clearInterval(retentionTimer);
        if (heartbeatTimer) clearInterval(heartbeatTimer);
        await scheduler.stop(config.shutdown.grace_seconds * 1000);
        try {
          await repos.workers.stopped(scheduler.owner);
        } catch {
          /* the database may be gone */
        }
        for (const fn of stopHooks.reverse()) {
          try {
            await fn();
          } catch (err) {
            logger.error({ err: coerceError(err) }, 'shutdown hook failed');
          }
        }
        await feed?.stop();
        loopMonitor.stop();
      })();
      return stoppingWork;
    },
    stop() {
      stopping ??= (async () => {
        await services.stopWork();
        await db.close();
      })();
      return stopping;
    },
  };
  return services;
}
