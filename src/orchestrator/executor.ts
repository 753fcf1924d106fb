// Runs one claimed task through the pipeline: workspace → prompt → agent → outcome (publish, record).
// It owns only the sequence, the WIP checkpoints around the run, and mapping a thrown error to a
// failed result; each stage is its own module with its own dependencies.
import type { Logger } from 'pino';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { LogsRepo } from '../db/repositories/logs.js';
import type { Workspace } from '../git/workspace.js';
import type { EventBus } from '../events/bus.js';
import type { ExecContext, ExecResult } from '../queue/types.js';
import { coerceError } from '../errors.js';
import { scrub } from '../secrets.js';
import { LogWriter } from './log-writer.js';
import type { WorkspaceStage } from './prepare.js';
import type { PromptStage } from './prompt-stage.js';
import type { AgentRun, AgentStage } from './agent-stage.js';
import type { OutcomeStage } from './outcome.js';
import { startCheckpoints, type CheckpointTimer } from './checkpoints.js';
import type { Prepared } from './types.js';

export interface ExecutorDeps {
  logger: Logger;
  logs: LogsRepo;
  bus: EventBus;
  workspace: Workspace;
  prepare: WorkspaceStage;
  prompt: PromptStage;
  agent: AgentStage;
  outcome: OutcomeStage;
  /**
   * Several workers (PostgreSQL): a standalone task's work is pushed as a WIP checkpoint this often
   * (and when it stops without finishing), so another worker can take it over. 0: never.
   */
  checkpointMs: number;
}

/** A resumed session the CLI no longer has: the run is repeated as a fresh session. */
const SESSION_GONE = /no conversation found|session .*not found/i;

export class TaskExecutor {
  constructor(private readonly d: ExecutorDeps) {}

  readonly execute = async (task: TaskRow, ctx: ExecContext): Promise<ExecResult> => {
    const log = new LogWriter(this.d.logs, task.id, (err) =>
      this.d.logger.error({ err: coerceError(err), taskId: task.id }, 'log write failed'),
    );
    try {
      const prepared = await this.d.prepare.prepare(task, log);
      if ('wait' in prepared) return prepared.wait;
      return await this.runPrepared(prepared, ctx, log);
    } catch (err) {
      const msg = scrub(coerceError(err).message);
      log.system(`error: ${msg}`);
      return { status: 'failed', error: msg };
    } finally {
      await log.flush();
    }
  };

  private async runPrepared(p: Prepared, ctx: ExecContext, log: LogWriter): Promise<ExecResult> {
    const { task, wt } = p;
    const plan = await this.d.prompt.plan(p);
    // Interrupted mid-run: keep what the agent did as a checkpoint before it continues.
    if (plan.resume && !plan.answered) {
      if (await this.d.workspace.commitAll(wt.path, `WIP: checkpoint of task ${task.id} before resuming (attempt ${task.attempts})`))
        log.system('committed a WIP checkpoint of the interrupted work');
    }
    const cp = this.d.checkpointMs > 0 && !task.workflow_id ? startCheckpoints(this.d.workspace, this.d.checkpointMs, { ...p, log }) : null;
    this.d.bus.emit('agent.started', { task, branch: p.branch });
    let agent: AgentRun;
    try {
      const input = { task, ctx, log, wt, spec: p.spec };
      agent = await this.d.agent.run({ ...input, prompt: plan.prompt, sessionId: plan.resume ? task.session_id : undefined });
      const { run } = agent;
      if (plan.resume && run.outcome !== 'success' && SESSION_GONE.test(`${run.error}\n${run.stderrTail.join('\n')}`)) {
        log.system('the earlier session is gone; starting a fresh session with the history in the prompt');
        agent = await this.d.agent.run({ ...input, prompt: plan.fresh(), sessionId: undefined });
      }
    } finally {
      await cp?.stop();
    }
    const res = await this.d.outcome.settle(p, ctx, log, agent);
    await this.lastCheckpoint(p, ctx, cp, res);
    return res;
  }

  // Unfinished work (shutdown, usage limit, a question) keeps its worktree here: push it as the last
  // checkpoint, since any worker may continue it. Finished work drops the checkpoint. A task another
  // worker has taken over keeps it untouched.
  private async lastCheckpoint(p: Prepared, ctx: ExecContext, cp: CheckpointTimer | null, res: ExecResult): Promise<void> {
    if (!cp || ctx.abortReason() === 'lease_lost') return;
    if (res.status === 'queued' || res.status === 'waiting_for_input') await cp.push();
    else if (cp.pushed() || p.checkpointed) await this.d.workspace.dropCheckpoint(p.spec, p.task.id).catch(() => undefined);
  }
}
