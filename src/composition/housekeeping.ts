// Timers every process runs: the worker heartbeat behind GET /api/workers, and (once per
// installation) deleting old task logs so a busy install's database does not grow without bound.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { LogsRepo } from '../db/repositories/logs.js';
import type { WorkersRepo } from '../db/repositories/workers.js';
import type { RunningTasks } from '../queue/running.js';
import { coerceError } from '../errors.js';

export interface HousekeepingDeps {
  config: Config;
  logger: Logger;
  logs: LogsRepo;
  workers: WorkersRepo;
  running: RunningTasks;
  runsAgents: boolean;
}

export class Housekeeping {
  private retentionTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** The beat in flight, if any: stop() waits for it, so none lands after "stopped". */
  private beat: Promise<void> | null = null;

  constructor(private readonly d: HousekeepingDeps) {}

  /** One beat now, then one every 5 s (never two at once: a slow database must not pile them up). */
  async startHeartbeat(): Promise<void> {
    await this.heartbeat();
    this.heartbeatTimer = setInterval(() => {
      if (this.beat) return;
      this.beat = this.heartbeat().finally(() => (this.beat = null));
    }, 5000);
    this.heartbeatTimer.unref();
  }

  startRetention(): void {
    void this.purgeLogs();
    this.retentionTimer ??= setInterval(() => void this.purgeLogs(), 3_600_000);
    this.retentionTimer.unref();
  }

  /** Stops the timers and says this process is gone. */
  async stop(): Promise<void> {
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await this.beat;
    try {
      await this.d.workers.stopped(this.d.running.owner);
    } catch {
      /* the database may be gone */
    }
  }

  private async heartbeat(): Promise<void> {
    const { config } = this.d;
    try {
      await this.d.workers.heartbeat({
        id: this.d.running.owner,
        host: hostname(),
        pid: process.pid,
        role: config.role,
        max_concurrent: this.d.runsAgents ? config.max_concurrent_agents : 0,
        running: this.d.running.ids(),
      });
    } catch (err) {
      this.d.logger.warn({ err: coerceError(err) }, 'worker heartbeat failed');
    }
  }

  private async purgeLogs(): Promise<void> {
    const days = this.d.config.retention.task_logs_days;
    if (days <= 0) return;
    try {
      const n = await this.d.logs.purgeEnded(new Date(Date.now() - days * 86_400_000).toISOString());
      if (n > 0) this.d.logger.info({ removed: n, days }, 'old task logs deleted');
      await this.d.workers.purgeOlderThan(new Date(Date.now() - 7 * 86_400_000).toISOString());
    } catch (err) {
      this.d.logger.warn({ err: coerceError(err) }, 'task log purge failed');
    }
  }
}
