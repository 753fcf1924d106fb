// Operator and automatic pauses of the queue (usage limits, daily budget). State lives in SQLite.
import type { KvRepo } from '../db/repositories/kv.js';
import type { RunsRepo } from '../db/repositories/runs.js';
import type { EventBus } from '../events/bus.js';
import type { StartGate } from './types.js';

export interface PauseState {
  paused: boolean;
  until: string | null;
  reason: string;
  by: string;
  since: string | null;
}

const KEY = 'queue_pause';

const startOfUtcDay = (ms: number) => {
  const d = new Date(ms);
  d.setUTCHours(0, 0, 0, 0);
  return d;
};

export class QueueControl {
  constructor(private readonly d: { kv: KvRepo; runs: RunsRepo; bus: EventBus; dailyBudgetUsd: number }) {
    // An agent that met a usage limit stops new starts until the limit resets.
    d.bus.on('agent.usage_limit', async ({ until, message }) => {
      await this.pause(until, `usage limit: ${message}`, 'agent');
    });
  }

  async state(now = Date.now()): Promise<PauseState & { daily_spent_usd: number; daily_budget_usd: number }> {
    const p = await this.d.kv.get<PauseState>(KEY);
    const active = p?.paused && (!p.until || Date.parse(p.until) > now);
    return {
      ...(active ? p! : { paused: false, until: null, reason: '', by: '', since: null }),
      daily_spent_usd: await this.d.runs.costSince(startOfUtcDay(now).toISOString()),
      daily_budget_usd: this.d.dailyBudgetUsd,
    };
  }

  /** Stops new starts until `until` (or until resumed by hand). Running agents go on. */
  async pause(until: Date | null, reason: string, by: string): Promise<PauseState> {
    const current = await this.d.kv.get<PauseState>(KEY);
    // A later automatic reset time extends a pause; it never shortens one.
    const later =
      current?.paused && current.until && until && Date.parse(current.until) > until.getTime() ? new Date(current.until) : until;
    const p: PauseState = {
      paused: true,
      until: later ? later.toISOString() : null,
      reason,
      by,
      since: current?.paused ? current.since : new Date().toISOString(),
    };
    await this.d.kv.set(KEY, p);
    this.d.bus.emit('queue.paused', { until: p.until, reason, by });
    return p;
  }

  async resume(by: string): Promise<void> {
    const p = await this.d.kv.get<PauseState>(KEY);
    await this.d.kv.delete(KEY);
    if (p?.paused) this.d.bus.emit('queue.resumed', { by, reason: p.reason });
  }

  /** The scheduler's gate: closed while paused or when today's budget is spent. */
  readonly gate: StartGate = async () => {
    const now = Date.now();
    const p = await this.d.kv.get<PauseState>(KEY);
    if (p?.paused) {
      if (!p.until || Date.parse(p.until) > now) return { ok: false, retryAt: p.until ? Date.parse(p.until) : undefined, reason: p.reason };
      await this.resume('timer');
    }
    if (this.d.dailyBudgetUsd > 0) {
      const dayStart = startOfUtcDay(now);
      const spent = await this.d.runs.costSince(dayStart.toISOString());
      if (spent >= this.d.dailyBudgetUsd) {
        const tomorrow = dayStart.getTime() + 86_400_000;
        const day = dayStart.toISOString().slice(0, 10);
        if (!(await this.d.kv.get(`budget_notice:${day}`))) {
          await this.d.kv.set(`budget_notice:${day}`, true);
          this.d.bus.emit('queue.budget_spent', { spent, budget: this.d.dailyBudgetUsd, resumesAt: new Date(tomorrow).toISOString() });
        }
        return { ok: false, retryAt: tomorrow, reason: `daily budget of $${this.d.dailyBudgetUsd} spent` };
      }
    }
    return { ok: true };
  };
}
