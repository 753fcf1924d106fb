// Builds every long-lived object of the process from a Config. main.ts and the tests share it.
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config.js';
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

export interface Services {
  config: Config;
  logger: Logger;
  db: Db;
  repos: { tasks: TasksRepo; logs: LogsRepo; runs: RunsRepo; events: EventsRepo; kv: KvRepo };
  bus: EventBus;
  stream: StreamPublisher;
  tasks: TaskService;
  scheduler: Scheduler;
  taskTokens: TaskTokens;
  /** Extra /health fields contributed by optional parts (memory, outbox). */
  health(): Record<string, unknown>;
  addHealth(name: string, fn: () => unknown): void;
  /** Hooks run on start (after recovery, before the queue starts), in order. */
  onStart(fn: () => Promise<void> | void): void;
  /** Hooks run on stop, in reverse order of registration. */
  onStop(fn: () => Promise<void> | void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ServiceOptions {
  /** Replaces the agent executor (tests of the queue). */
  executor?: Executor;
}

export function createServices(config: Config, logger: Logger, opts: ServiceOptions = {}): Services {
  const db = openDb(path.join(config.data_dir, 'factory.db'));
  const repos = { tasks: new TasksRepo(db), logs: new LogsRepo(db), runs: new RunsRepo(db), events: new EventsRepo(db), kv: new KvRepo(db) };
  const bus = new EventBus((err, event) => logger.error({ err: coerceError(err), event }, 'event listener failed'));
  const stream = new StreamPublisher(repos.events, bus);
  const tasks = new TaskService(repos.tasks, bus, stream);
  const executor: Executor = opts.executor ?? (async () => ({ status: 'failed', error: 'no agent executor configured' }));
  const scheduler = new Scheduler({ tasks, repo: repos.tasks, runs: repos.runs, logger, executor }, {
    maxConcurrent: config.max_concurrent_agents,
    maxAttempts: config.queue.max_attempts,
    leaseMs: config.queue.lease_seconds * 1000,
    pollMs: config.queue.poll_interval_ms,
  });
  const healthParts = new Map<string, () => unknown>();
  const startHooks: Array<() => Promise<void> | void> = [];
  const stopHooks: Array<() => Promise<void> | void> = [];
  let stopping: Promise<void> | null = null;

  // Old task logs go, so a busy install's database does not grow without bound.
  let retentionTimer: NodeJS.Timeout | null = null;
  const purgeLogs = () => {
    const days = config.retention.task_logs_days;
    if (days <= 0) return;
    try {
      const n = repos.logs.purgeEnded(new Date(Date.now() - days * 86_400_000).toISOString());
      if (n > 0) logger.info({ removed: n, days }, 'old task logs deleted');
    } catch (err) {
      logger.warn({ err: coerceError(err) }, 'task log purge failed');
    }
  };
  const startRetention = () => {
    purgeLogs();
    retentionTimer ??= setInterval(purgeLogs, 3_600_000);
    retentionTimer.unref();
  };

  const services: Services = {
    config, logger, db, repos, bus, stream, tasks, scheduler, taskTokens: new TaskTokens(repos.kv),
    onStop: (fn) => { stopHooks.push(fn); },
    onStart: (fn) => { startHooks.push(fn); },
    health: () => Object.fromEntries([...healthParts].map(([k, fn]) => [k, fn()])),
    addHealth: (name, fn) => { healthParts.set(name, fn); },
    async start() {
      scheduler.recover();
      startRetention();
      for (const fn of startHooks) await fn();
      scheduler.start();
    },
    stop() {
      stopping ??= (async () => {
        if (retentionTimer) clearInterval(retentionTimer);
        await scheduler.stop(config.shutdown.grace_seconds * 1000);
        for (const fn of stopHooks.reverse()) {
          try { await fn(); } catch (err) { logger.error({ err: coerceError(err) }, 'shutdown hook failed'); }
        }
        db.close();
      })();
      return stopping;
    },
  };
  return services;
}
