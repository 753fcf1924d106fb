// The outcome stage: turns how the agent's run ended into the task's result — a question, a usage
// limit, a budget stop, a failure, or success (published as a PR, or finished by a workflow step) —
// removes the worktree when the task is done with it, and tells the run recorders.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { RunsRepo } from '../db/repositories/runs.js';
import type { TaskService } from '../tasks/service.js';
import type { EventBus } from '../events/bus.js';
import type { Workspace } from '../git/workspace.js';
import type { ProtocolObject } from '../agents/protocol.js';
import { truncate } from '../agents/prompt.js';
import { detectUsageLimit, detectUsageLimitText, type UsageLimit } from '../agents/limits.js';
import { coerceError } from '../errors.js';
import { scrub } from '../secrets.js';
import { handsBack, type ExecContext, type ExecResult } from '../queue/types.js';
import { parseClarification, type ClarificationContext } from './clarification.js';
import type { LogWriter } from './log-writer.js';
import type { PullRequestPublisher } from './publish.js';
import type { AgentRun } from './agent-stage.js';
import type { FinisherFor, Prepared, RunRecorder, RunReport } from './types.js';
import { worktreeKey, type WorktreeCleaner } from './worktree.js';

export interface OutcomeDeps {
  config: Config;
  logger: Logger;
  tasks: TaskService;
  runs: RunsRepo;
  bus: EventBus;
  workspace: Workspace;
  cleaner: WorktreeCleaner;
  publisher: PullRequestPublisher;
  /** How a successful run of this task is finished, when not by a pull request (workflow steps). */
  finisherFor: FinisherFor;
  /** Told of every run, in order, before the result is recorded. */
  recorders: RunRecorder[];
}

export class OutcomeStage {
  constructor(private readonly d: OutcomeDeps) {}

  async settle(p: Prepared, ctx: ExecContext, log: LogWriter, agent: AgentRun): Promise<ExecResult> {
    const { task, spec } = p;
    const { run, protocol } = agent;
    if (run.outcome === 'aborted' && ctx.abortReason() === 'lease_lost') {
      // Another worker owns the task now: this copy only removes its local worktree, and reports and
      // records nothing (the task's row is the other worker's to write).
      log.system('stopped: another worker has taken this task over');
      await this.d.workspace.remove(spec, worktreeKey(task), task.branch_name || undefined).catch(() => undefined);
      return { status: 'failed', error: 'lease lost to another worker' };
    }
    const handoff = [...protocol].reverse().find((o) => o.type === 'handoff_output');
    const finalText = run.result?.text ?? run.tail.slice(-5).join('\n');
    const base = { task, run, runId: agent.runId, protocol, handoff, learnings: collectLearnings(protocol), finalText, changedFiles: [] };
    const summary = truncate(typeof handoff?.summary === 'string' ? handoff.summary : finalText, 2000);
    const result = await this.decide(p, ctx, log, base, summary);
    if (result.status !== 'queued') result.patch = { result_summary: summary, ...result.patch };
    const report: RunReport = { ...base, status: result.status };
    for (const record of this.d.recorders) {
      try {
        await record(report);
      } catch (err) {
        this.d.logger.warn({ err: coerceError(err), taskId: task.id }, 'run recorder failed');
      }
    }
    // A revision is done once its run ended one way or the other.
    if (result.status !== 'queued' && task.revision_context) result.patch = { ...result.patch, revision_context: '' };
    return result;
  }

  /** The result by how the run ended; `base.changedFiles` is filled after a published success. */
  private async decide(
    p: Prepared,
    ctx: ExecContext,
    log: LogWriter,
    base: Omit<RunReport, 'status'>,
    summary: string,
  ): Promise<ExecResult> {
    const { task, spec, wt } = p;
    const run = base.run;
    const keep = Boolean(task.workflow_id) || task.keep_worktree === 1;
    const cleanup = async () => {
      if (!keep) await this.d.cleaner.remove(spec, task, log);
    };
    let limit: UsageLimit | undefined;
    if (run.outcome === 'aborted') {
      // The scheduler decides: a cancel ends the task, a shutdown puts it back for the next boot.
      if (handsBack(ctx.abortReason())) return { status: 'queued', countAttempt: false };
      await cleanup();
      return { status: 'failed', error: 'Cancelled by request' };
    }
    if (run.outcome === 'stopped' && run.terminationReason === 'clarification') return this.question(task, log, base.protocol);
    if ((run.outcome === 'agent_error' || run.outcome === 'crashed') && (limit = detectUsageLimit(run))) {
      return this.usageLimited(task, log, limit);
    }
    if (run.outcome !== 'success') {
      await cleanup();
      return { status: 'failed', error: truncate(scrub(run.error), 2000) };
    }
    const spent = await this.overBudget(task);
    if (spent !== undefined) {
      await cleanup();
      const budget = this.d.config.budgets.task_usd.toFixed(2);
      return { status: 'failed', error: `Task budget exceeded: spent $${spent.toFixed(2)} of $${budget} (budgets.task_usd)` };
    }
    const finisher = this.d.finisherFor(task);
    const result = finisher ? await finisher(task, wt, spec, base) : await this.d.publisher.publish(task, log, wt, spec, summary);
    // What the run changed, for the handoff (after publish: everything is committed by then).
    if (!finisher) base.changedFiles = await this.d.workspace.changedFiles(wt.path, wt.baseBranch).catch(() => []);
    if (result.status !== 'waiting_for_input') await cleanup();
    return result;
  }

  /** What the task has spent, when that is over its budget. */
  private async overBudget(task: TaskRow): Promise<number | undefined> {
    const budget = this.d.config.budgets.task_usd;
    if (budget <= 0) return undefined;
    const spent = (await this.d.tasks.get(task.id))?.cost_usd ?? 0;
    return spent > budget ? spent : undefined;
  }

  private question(task: TaskRow, log: LogWriter, protocol: ProtocolObject[]): ExecResult {
    const q = [...protocol].reverse().find((o) => o.type === 'clarification_needed')!;
    const context = addQuestion(parseClarification(task.clarification_context), q);
    log.system(`agent asked: ${String(q.question)}`);
    return { status: 'waiting_for_input', patch: { clarification_context: JSON.stringify(context) } };
  }

  /**
   * Not the task's fault: pause the queue until the limit resets and resume this task then, without
   * burning an attempt; but a task that meets a limit on every run in a row fails instead of looping.
   */
  private async usageLimited(task: TaskRow, log: LogWriter, limit: UsageLimit): Promise<ExecResult> {
    const cap = this.d.config.agent.max_usage_limit_pauses;
    // This run's row is already closed with the limit text as its error.
    const streak = countTrailing(await this.d.runs.forTask(task.id), (r) => detectUsageLimitText(r.error));
    if (streak > cap) {
      return {
        status: 'failed',
        error: `The agent hit a usage limit on ${streak} runs in a row (agent.max_usage_limit_pauses is ${cap}): ${limit.message}`,
      };
    }
    const until =
      limit.resetAt && limit.resetAt.getTime() > Date.now()
        ? limit.resetAt
        : new Date(Date.now() + this.d.config.agent.usage_limit_backoff_minutes * 60_000);
    log.system(
      `usage limit reached (${limit.message}); the task waits until ${until.toISOString()} (pause ${streak} of at most ${cap} in a row)`,
    );
    this.d.bus.emit('agent.usage_limit', { task, until, message: limit.message });
    return { status: 'queued', notBefore: until, countAttempt: false };
  }
}

function collectLearnings(protocol: ProtocolObject[]): string[] {
  const out: string[] = [];
  for (const o of protocol) {
    if (o.type === 'learning' && typeof o.content === 'string') out.push(o.content);
    if (o.type === 'handoff_output' && Array.isArray(o.learnings)) {
      for (const l of o.learnings) if (typeof l === 'string' && l.trim()) out.push(l.trim());
    }
  }
  return [...new Set(out)].slice(0, 20);
}

function addQuestion(ctx: ClarificationContext, q: ProtocolObject): ClarificationContext {
  const askedAt = new Date().toISOString();
  const question = String(q.question).slice(0, 4000);
  return {
    ...ctx,
    pending_question: question,
    asked_at: askedAt,
    options: Array.isArray(q.options) ? q.options.map(String).slice(0, 10) : undefined,
    context: typeof q.context === 'string' ? q.context.slice(0, 2000) : undefined,
    history: [...ctx.history, { question, asked_at: askedAt }],
  };
}

/** How many of the last rows (newest backwards) satisfy `pred` without a break. */
function countTrailing<T>(rows: T[], pred: (row: T) => boolean): number {
  let n = 0;
  for (let i = rows.length - 1; i >= 0 && pred(rows[i]!); i--) n++;
  return n;
}
