// The composition root: builds the whole process from a Config — the core, then (unless a test
// replaces agent execution) the integrations and the agent pipeline, then the scheduler that runs
// it — and says in what order it all starts and stops. main.ts, the tests and the benches use it.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { RoutePlugin } from '../server/app.js';
import { Scheduler } from '../queue/scheduler.js';
import { LocalQueue, SharedQueue } from '../queue/backend.js';
import type { Executor } from '../queue/types.js';
import { reapLeftoverRun } from '../agents/reap.js';
import { LoopMonitor } from '../health/loop-monitor.js';
import { buildCore, type Core } from './core.js';
import { Housekeeping } from './housekeeping.js';
import { buildIntegrations, type WireOptions, type Wired } from './integrations.js';

export type { Wired, WireOptions } from './integrations.js';

export interface Services extends Core {
  scheduler: Scheduler;
  /** The integrations and the agent pipeline, when built. */
  wired?: Wired;
  /** Their HTTP routes (empty when not built). */
  routes: RoutePlugin[];
  /** Every /health field besides the counts: the event loop and each part's own. */
  health(): Promise<Record<string, unknown>>;
  start(): Promise<void>;
  /** Stops all work (claiming, agents within the grace, outbox, pollers) but keeps the database open for HTTP. */
  stopWork(): Promise<void>;
  /** stopWork(), then closes the database. */
  stop(): Promise<void>;
}

export interface ServiceOptions {
  /** Runs tasks instead of the agent pipeline (tests of the queue). */
  executor?: Executor;
  /** Build the integrations and the agent pipeline (default: only when no executor is given). */
  integrations?: boolean;
  wire?: WireOptions;
}

export async function createServices(config: Config, logger: Logger, opts: ServiceOptions = {}): Promise<Services> {
  const core = await buildCore(config, logger);
  const wired = (opts.integrations ?? !opts.executor) ? await buildIntegrations(core, opts.wire) : undefined;
  const executor: Executor =
    opts.executor ?? wired?.executor.execute ?? (async () => ({ status: 'failed', error: 'no agent executor configured' }));
  const leaseMs = config.queue.lease_seconds * 1000;
  // Workers hear of new runnable work through the shared event feed, not only by polling.
  const wake = core.runsAgents ? { bus: core.bus, notify: () => core.running.notify() } : null;
  const backend = core.feed ? new SharedQueue(core.repos.queue, leaseMs, wake) : new LocalQueue(core.repos.queue);
  const scheduler = new Scheduler(
    {
      tasks: core.tasks,
      repo: core.repos.tasks,
      queue: backend,
      runs: core.repos.runs,
      logger,
      executor,
      running: core.running,
      gate: core.queue.gate,
      reapAgent: (run) => reapLeftoverRun(run, config.agent.command, logger),
    },
    {
      maxConcurrent: config.max_concurrent_agents,
      maxAttempts: config.queue.max_attempts,
      leaseMs,
      pollMs: config.queue.poll_interval_ms,
      globalLimit: config.queue.global_max_concurrent,
    },
  );
  return withLifecycle(core, scheduler, wired);
}

function withLifecycle(core: Core, scheduler: Scheduler, wired: Wired | undefined): Services {
  const { config, logger, lifecycle, feed } = core;
  const loopMonitor = new LoopMonitor(logger.child({ component: 'event-loop' }));
  const housekeeping = new Housekeeping({ ...core, logs: core.repos.logs, workers: core.repos.workers });
  let stopping: Promise<void> | null = null;
  let stoppingWork: Promise<void> | null = null;
  const services: Services = {
    ...core,
    scheduler,
    wired,
    routes: wired?.routes ?? [],
    health: async () => ({ event_loop: loopMonitor.health(), ...(await lifecycle.report()) }),
    async start() {
      loopMonitor.start();
      await feed?.start();
      await housekeeping.startHeartbeat();
      if (core.runsAgents) await scheduler.recover();
      if (core.runsSingletons) housekeeping.startRetention();
      await lifecycle.startAll();
      if (core.runsAgents) scheduler.start();
    },
    stopWork() {
      stoppingWork ??= (async () => {
        await scheduler.stop(config.shutdown.grace_seconds * 1000);
        await housekeeping.stop();
        await lifecycle.stopAll();
        await feed?.stop();
        loopMonitor.stop();
      })();
      return stoppingWork;
    },
    stop() {
      stopping ??= (async () => {
        await services.stopWork();
        await core.db.close();
      })();
      return stopping;
    },
  };
  return services;
}
