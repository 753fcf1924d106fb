// Runs workflows step by step. Every decision is driven by task status events and stored in
// the database, so a restart continues a workflow from the step it was on (see reconcile()).
import { KeyedSerial } from '../async/serial.js';
import type { Logger } from 'pino';
import type { Config, WorkflowDef } from '../config.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { HandoffRow, HandoffsRepo, StepRow, WorkflowRow, WorkflowsRepo } from '../db/repositories/workflows.js';
import type { EventBus, StreamPublisher } from '../events/bus.js';
import type { TaskService } from '../tasks/service.js';
import type { QueueSignals } from '../queue/running.js';
import { worktreeKey } from '../orchestrator/worktree.js';
import type { RepoSpecOf } from '../orchestrator/repo-specs.js';
import type { Workspace } from '../git/workspace.js';
import { slugify } from '../git/workspace.js';
import type { GitHubClient } from '../integrations/github.js';
import { evaluateCondition, loopTarget, validateWorkflow } from './definition.js';
import { parseReview } from './review.js';
import { openWorkflowPr } from './workflow-pr.js';
import { truncate } from '../agents/prompt.js';
import { coerceError } from '../errors.js';
import { nowIso } from '../db/time.js';

/** outputs[`@handoff:<key>`] holds the id of the handoff that produced outputs[<key>]. */
const HANDOFF_KEY = '@handoff:';

export interface EngineDeps {
  config: Config;
  logger: Logger;
  workflows: WorkflowsRepo;
  handoffs: HandoffsRepo;
  tasks: TaskService;
  queue: QueueSignals;
  repoSpec: RepoSpecOf;
  workspace: Workspace;
  github: GitHubClient;
  bus: EventBus;
  stream: StreamPublisher;
}

export interface StartWorkflow {
  name: string;
  def: WorkflowDef;
  title: string;
  description: string;
  repo: string;
  plane_issue_id: string;
}

export class WorkflowEngine {
  /** Workflows whose completion (push + PR) is in flight, so events cannot start it twice. */
  private readonly completing = new Set<number>();
  /**
   * Per workflow, the tail of its chain of state changes (task events, advancing, cancelling): they
   * run one after another, so a check of a step or workflow status and the writes that follow it are
   * not interleaved with another change of the same workflow in this process.
   */
  private readonly chains = new KeyedSerial();

  constructor(private readonly d: EngineDeps) {
    d.bus.on('task.status', async ({ task }) => {
      const workflowId = task.workflow_id;
      if (workflowId) await this.serial(workflowId, () => this.onTaskStatus(task));
    });
  }

  async start(input: StartWorkflow): Promise<WorkflowRow> {
    validateWorkflow(input.name, input.def);
    const wf = await this.d.workflows.create({
      name: input.name,
      title: input.title,
      description: input.description,
      repo: input.repo,
      plane_issue_id: input.plane_issue_id,
      max_iterations: input.def.max_iterations,
      definition: JSON.stringify(input.def),
      steps: input.def.steps,
    });
    const branch = `${this.d.config.git.branch_prefix}wf-${wf.id}-${slugify(input.title)}`;
    await this.serial(wf.id, async () => {
      await this.d.workflows.update(wf.id, { branch_name: branch });
      await this.publish(wf.id, null);
      this.d.bus.emit('workflow.started', { workflow: (await this.d.workflows.get(wf.id))! });
      await this.advanceFrom(wf.id, 0);
    });
    return (await this.d.workflows.get(wf.id))!;
  }

  async cancel(id: number): Promise<WorkflowRow | undefined> {
    // The status change and the step it stops are one change of the workflow: no task event of the
    // workflow starts its next step in between.
    const cancelled = await this.serial(id, async () => {
      const wf = await this.d.workflows.transition(id, ['running', 'pending'], 'cancelled', {
        completed_at: nowIso(),
        error: 'Cancelled by request',
      });
      if (!wf) return undefined;
      const step = (await this.d.workflows.steps(id)).find((s) => s.status === 'running');
      if (step) await this.d.workflows.updateStep(id, step.step_index, { status: 'failed', completed_at: nowIso() });
      return { wf, step };
    });
    if (!cancelled) return undefined;
    const { wf, step } = cancelled;
    if (step?.task_id) await this.d.queue.cancel(step.task_id, (this.d.config.agent.kill_grace_seconds + 5) * 1000);
    await this.cleanup(wf);
    await this.publish(id, 'running');
    this.d.bus.emit('workflow.cancelled', { workflow: wf });
    return this.d.workflows.get(id);
  }

  /** Picks up running workflows after a restart: finishes steps whose task ended while we were down. */
  async reconcile(): Promise<void> {
    for (const { id } of await this.d.workflows.byStatus('running')) {
      await this.serial(id, () => this.reconcileOne(id));
    }
  }

  private async reconcileOne(id: number): Promise<void> {
    // Read again inside the workflow's chain: an event may have moved it on since the list was read.
    const wf = await this.d.workflows.get(id);
    if (!wf || wf.status !== 'running') return;
    const steps = await this.d.workflows.steps(wf.id);
    const step = steps.find((s) => s.status === 'running');
    if (!step) {
      const next = steps.findIndex((s) => s.status === 'pending');
      await this.advanceFrom(wf.id, next === -1 ? steps.length : next);
      return;
    }
    const task = step.task_id ? await this.d.tasks.get(step.task_id) : undefined;
    if (!task) await this.startStep(wf, step);
    else if (['done', 'failed', 'cancelled'].includes(task.status)) {
      // Queued behind this change in the workflow's chain. Reconcile does not wait for it (it never
      // did); a failure is logged.
      void this.serial(wf.id, () => this.onTaskStatus(task)).catch((err: unknown) =>
        this.d.logger.warn({ err: coerceError(err), workflowId: wf.id }, 'could not settle the workflow step'),
      );
    }
  }

  /**
   * Runs fn after every earlier change of workflow `id` in this process has settled. fn must not
   * wait for another serial() of the same workflow (it would wait for itself).
   */
  private serial<T>(id: number, fn: () => Promise<T>): Promise<T> {
    return this.chains.run(String(id), fn);
  }

  private async onTaskStatus(task: TaskRow): Promise<void> {
    const wf = await this.d.workflows.get(task.workflow_id!);
    if (!wf || wf.status !== 'running' || task.workflow_step === null) return;
    const step = (await this.d.workflows.steps(wf.id))[task.workflow_step];
    if (!step || step.task_id !== task.id || step.status !== 'running') return;
    if (task.status === 'done') return this.completeStep(wf, step, task);
    if (task.status === 'failed') return this.fail(wf, step, `Step ${step.step_index} (${step.agent_type}) failed: ${task.error}`);
    if (task.status === 'cancelled') {
      await this.d.workflows.updateStep(wf.id, step.step_index, { status: 'failed', completed_at: nowIso() });
      const done = await this.d.workflows.transition(wf.id, ['running'], 'cancelled', {
        completed_at: nowIso(),
        error: `Step ${step.step_index} was cancelled`,
      });
      if (done) {
        await this.publish(wf.id, 'running');
        await this.cleanup(done);
      }
    }
  }

  private async completeStep(wf: WorkflowRow, step: StepRow, task: TaskRow): Promise<void> {
    const handoff = (await this.d.handoffs.forTask(task.id, 'from')).at(-1);
    const output = handoff?.content || task.result_summary;
    await this.d.workflows.updateStep(wf.id, step.step_index, {
      status: 'completed',
      output_data: truncate(output, 10_000),
      completed_at: nowIso(),
    });
    const outputs = JSON.parse(wf.outputs) as Record<string, string>;
    const setOutput = (key: string) => {
      outputs[key] = truncate(output, 50_000);
      if (handoff) outputs[`${HANDOFF_KEY}${key}`] = String(handoff.id);
    };
    if (step.output_key) setOutput(step.output_key);
    const def = JSON.parse(wf.definition) as WorkflowDef;
    const looping = Boolean(step.loop_to) && wf.iteration + 1 < wf.max_iterations;
    const target = looping ? loopTarget(def, step.loop_to) : -1;
    // Looping back: the step we return to works on what this step just produced.
    const targetInput = target >= 0 ? def.steps[target]?.input : undefined;
    if (targetInput) setOutput(targetInput);
    await this.d.workflows.update(wf.id, { outputs: JSON.stringify(outputs) });
    if (looping) {
      const iteration = wf.iteration + 1;
      await this.d.workflows.update(wf.id, { iteration });
      await this.d.workflows.resetStepsFrom(wf.id, target, iteration);
      this.d.bus.emit('workflow.iteration', { workflow: (await this.d.workflows.get(wf.id))!, iteration, max: wf.max_iterations });
      await this.advanceFrom(wf.id, target);
      return;
    }
    await this.advanceFrom(wf.id, step.step_index + 1);
  }

  // Starts the first step from `index` whose condition holds; past the last step, completes.
  private async advanceFrom(id: number, index: number): Promise<void> {
    const wf = await this.d.workflows.get(id);
    if (!wf || wf.status !== 'running') return;
    const steps = await this.d.workflows.steps(id);
    const outputs = JSON.parse(wf.outputs) as Record<string, string>;
    for (let i = index; i < steps.length; i++) {
      const s = steps[i]!;
      if (s.condition && !evaluateCondition(s.condition, s.input_key ? (outputs[s.input_key] ?? '') : '')) {
        await this.d.workflows.updateStep(id, i, { status: 'skipped', completed_at: nowIso() });
        continue;
      }
      await this.startStep(wf, s);
      return;
    }
    // Completion pushes and opens the PR: it runs on its own (complete() guards against a second
    // start, and its status change is guarded), nobody waits for it.
    void this.complete(id).catch((err: unknown) =>
      this.d.logger.warn({ err: coerceError(err), workflowId: id }, 'could not finish the workflow'),
    );
  }

  private async startStep(wf: WorkflowRow, s: StepRow): Promise<void> {
    const task = await this.d.tasks.create({
      title: `[${wf.name}] Step ${s.step_index}: ${wf.title}`.slice(0, 500),
      description: wf.description,
      repo: wf.repo,
      agent_type: s.agent_type,
      plane_issue_id: wf.plane_issue_id,
      workflow_id: wf.id,
      workflow_step: s.step_index,
      branch_name: wf.branch_name,
      run: true,
    });
    // The handoff that feeds this step now names its receiver.
    const source = await this.inputHandoff(wf, s);
    if (source) await this.d.handoffs.setTarget(source.id, task.id);
    await this.d.workflows.updateStep(wf.id, s.step_index, {
      status: 'running',
      task_id: task.id,
      started_at: nowIso(),
      iteration: wf.iteration,
    });
    await this.d.workflows.update(wf.id, { current_step: s.step_index });
    await this.publish(wf.id, 'running');
    this.d.queue.notify();
  }

  private async inputHandoff(wf: WorkflowRow, s: StepRow): Promise<HandoffRow | undefined> {
    if (!s.input_key) return undefined;
    const id = (JSON.parse(wf.outputs) as Record<string, string>)[`${HANDOFF_KEY}${s.input_key}`];
    return id ? this.d.handoffs.get(Number(id)) : undefined;
  }

  private async complete(id: number): Promise<void> {
    if (this.completing.has(id)) return;
    this.completing.add(id);
    try {
      const wf = await this.d.workflows.get(id);
      if (!wf || wf.status !== 'running') return;
      const steps = await this.d.workflows.steps(id);
      const lastReview = [...steps].reverse().find((s) => s.agent_type === 'reviewer' && s.status === 'completed');
      const review = lastReview ? parseReview(lastReview.output_data) : undefined;
      const result = !review ? 'completed' : review.approved ? 'approved' : 'max_iterations';
      const pr = await openWorkflowPr(this.d, wf, review, result);
      const prUrl = pr.url;
      // The work is pushed: the worktree goes before the workflow reads as completed, so whoever
      // sees it completed finds nothing of it left on disk.
      await this.cleanup(wf);
      const done = await this.d.workflows.transition(id, ['running'], 'completed', {
        completed_at: nowIso(),
        result,
        pr_url: prUrl,
        error: result === 'max_iterations' ? `Stopped after ${wf.max_iterations} iterations without the reviewer's approval` : '',
      });
      const lastTask = [...steps].reverse().find((s) => s.status === 'completed' && s.task_id);
      if (lastTask?.task_id && prUrl) await this.d.tasks.update(lastTask.task_id, { pr_url: prUrl });
      if (done && pr.number) {
        // The PR lives on after the workflow: a task in review adopts it, so CI failures and review
        // comments bring an agent back (the PR loop follows tasks).
        await this.d.tasks.create({
          title: wf.title,
          description: wf.description,
          repo: wf.repo,
          agent_type: 'coder',
          plane_issue_id: wf.plane_issue_id,
          parent_task_id: lastTask?.task_id ?? null,
          branch_name: wf.branch_name,
          base_branch: pr.base,
          pr_url: pr.url,
          pr_number: pr.number,
          inReview: true,
        });
      }
      if (done) {
        await this.publish(id, 'running');
        this.d.bus.emit('workflow.completed', { workflow: done });
      }
    } catch (err) {
      const wf = await this.d.workflows.get(id);
      if (wf) await this.fail(wf, undefined, `Could not finish the workflow: ${coerceError(err).message}`);
    } finally {
      this.completing.delete(id);
    }
  }

  private async fail(wf: WorkflowRow, step: StepRow | undefined, error: string): Promise<void> {
    if (step) await this.d.workflows.updateStep(wf.id, step.step_index, { status: 'failed', completed_at: nowIso() });
    const done = await this.d.workflows.transition(wf.id, ['running', 'pending'], 'failed', {
      error: truncate(error, 2000),
      completed_at: nowIso(),
    });
    if (!done) return;
    await this.publish(wf.id, wf.status);
    this.d.bus.emit('workflow.failed', { workflow: done });
    await this.cleanup(done);
  }

  private async cleanup(wf: WorkflowRow): Promise<void> {
    try {
      await this.d.workspace.remove(this.d.repoSpec(wf.repo), worktreeKey({ id: 0, workflow_id: wf.id }), wf.branch_name);
    } catch (err) {
      this.d.logger.warn({ err: coerceError(err), workflowId: wf.id }, 'could not remove workflow worktree');
    }
  }

  private async publish(id: number, from: string | null): Promise<void> {
    const wf = await this.d.workflows.get(id);
    if (wf)
      await this.d.stream.publish('workflow_status', null, {
        id: wf.id,
        name: wf.name,
        title: wf.title,
        status: wf.status,
        previous_status: from,
        current_step: wf.current_step,
        iteration: wf.iteration,
        pr_url: wf.pr_url,
        result: wf.result,
      });
  }
}
