// Runs workflows step by step. Every decision is driven by task status events and stored in
// SQLite, so a restart continues a workflow from the step it was on (see reconcile()).
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config, WorkflowDef } from '../config.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { HandoffsRepo, StepRow, WorkflowRow, WorkflowsRepo } from '../db/repositories/workflows.js';
import type { EventBus, StreamPublisher } from '../events/bus.js';
import type { TaskService } from '../tasks/service.js';
import type { Scheduler } from '../queue/scheduler.js';
import type { TaskExecutor } from '../orchestrator/executor.js';
import { worktreeKey } from '../orchestrator/executor.js';
import type { Workspace } from '../git/workspace.js';
import { slugify } from '../git/workspace.js';
import type { GitHubClient } from '../integrations/github.js';
import { evaluateCondition, loopTarget, validateWorkflow } from './definition.js';
import { buildHandoff, handoffSection } from './handoff.js';
import { issueCounts, parseReview, reviewAsPrompt } from './review.js';
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
  scheduler: Scheduler;
  executor: TaskExecutor;
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

  constructor(private readonly d: EngineDeps) {
    d.bus.on('task.status', ({ task }) => {
      if (task.workflow_id) return this.onTaskStatus(task);
    });
    // Step tasks get the input handoff (and for revisions the review) in their prompt.
    d.executor.addPromptSource((task) => this.promptFor(task));
    d.executor.systemPromptFor = (task) => this.systemPromptFor(task);
    d.executor.setFinisher((task) =>
      task.workflow_id
        ? async (t, wt, spec, report) => {
            // A step never opens a PR: its work is committed and pushed as a checkpoint of the branch.
            await d.workspace.commitAll(
              wt.path,
              `${t.title}\n\nFactory workflow ${t.workflow_id}, step ${t.workflow_step} (${t.agent_type}).`,
            );
            if ((await d.workspace.commitsAhead(wt.path, wt.baseBranch)) > 0)
              await d.workspace.push(spec, wt.path, wt.branch, wt.baseBranch);
            const changed = await d.workspace.changedFiles(wt.path, wt.baseBranch).catch(() => []);
            const h = buildHandoff(t.agent_type, report.handoff, report.finalText, changed);
            d.handoffs.create({ from_task_id: t.id, to_task_id: null, workflow_id: t.workflow_id, ...h });
            return { status: 'done' };
          }
        : undefined,
    );
  }

  start(input: StartWorkflow): WorkflowRow {
    validateWorkflow(input.name, input.def);
    const wf = this.d.workflows.create({
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
    this.d.workflows.update(wf.id, { branch_name: branch });
    this.publish(wf.id, null);
    this.d.bus.emit('workflow.started', { workflow: this.d.workflows.get(wf.id)! });
    this.advanceFrom(wf.id, 0);
    return this.d.workflows.get(wf.id)!;
  }

  async cancel(id: number): Promise<WorkflowRow | undefined> {
    const wf = this.d.workflows.transition(id, ['running', 'pending'], 'cancelled', {
      completed_at: nowIso(),
      error: 'Cancelled by request',
    });
    if (!wf) return undefined;
    const step = this.d.workflows.steps(id).find((s) => s.status === 'running');
    if (step) {
      this.d.workflows.updateStep(id, step.step_index, { status: 'failed', completed_at: nowIso() });
      if (step.task_id) await this.d.scheduler.cancel(step.task_id, (this.d.config.agent.kill_grace_seconds + 5) * 1000);
    }
    await this.cleanup(wf);
    this.publish(id, 'running');
    this.d.bus.emit('workflow.cancelled', { workflow: wf });
    return this.d.workflows.get(id);
  }

  /** Picks up running workflows after a restart: finishes steps whose task ended while we were down. */
  reconcile(): void {
    for (const wf of this.d.workflows.byStatus('running')) {
      const steps = this.d.workflows.steps(wf.id);
      const step = steps.find((s) => s.status === 'running');
      if (!step) {
        const next = steps.findIndex((s) => s.status === 'pending');
        this.advanceFrom(wf.id, next === -1 ? steps.length : next);
        continue;
      }
      const task = step.task_id ? this.d.tasks.get(step.task_id) : undefined;
      if (!task) this.startStep(wf, step);
      else if (['done', 'failed', 'cancelled'].includes(task.status)) {
        void Promise.resolve(this.onTaskStatus(task)).catch((err: unknown) =>
          this.d.logger.warn({ err: coerceError(err), workflowId: wf.id }, 'could not settle the workflow step'),
        );
      }
    }
  }

  private onTaskStatus(task: TaskRow): void | Promise<void> {
    const wf = this.d.workflows.get(task.workflow_id!);
    if (!wf || wf.status !== 'running' || task.workflow_step === null) return;
    const step = this.d.workflows.steps(wf.id)[task.workflow_step];
    if (!step || step.task_id !== task.id || step.status !== 'running') return;
    if (task.status === 'done') return this.completeStep(wf, step, task);
    if (task.status === 'failed') return this.fail(wf, step, `Step ${step.step_index} (${step.agent_type}) failed: ${task.error}`);
    if (task.status === 'cancelled') {
      this.d.workflows.updateStep(wf.id, step.step_index, { status: 'failed', completed_at: nowIso() });
      const done = this.d.workflows.transition(wf.id, ['running'], 'cancelled', {
        completed_at: nowIso(),
        error: `Step ${step.step_index} was cancelled`,
      });
      if (done) {
        this.publish(wf.id, 'running');
        void this.cleanup(done);
      }
    }
  }

  private completeStep(wf: WorkflowRow, step: StepRow, task: TaskRow): void {
    const handoff = this.d.handoffs.forTask(task.id, 'from').at(-1);
    const output = handoff?.content || task.result_summary;
    this.d.workflows.updateStep(wf.id, step.step_index, {
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
    this.d.workflows.update(wf.id, { outputs: JSON.stringify(outputs) });
    if (looping) {
      const iteration = wf.iteration + 1;
      this.d.workflows.update(wf.id, { iteration });
      this.d.workflows.resetStepsFrom(wf.id, target, iteration);
      this.d.bus.emit('workflow.iteration', { workflow: this.d.workflows.get(wf.id)!, iteration, max: wf.max_iterations });
      this.advanceFrom(wf.id, target);
      return;
    }
    this.advanceFrom(wf.id, step.step_index + 1);
  }

  // Starts the first step from `index` whose condition holds; past the last step, completes.
  private advanceFrom(id: number, index: number): void {
    const wf = this.d.workflows.get(id);
    if (!wf || wf.status !== 'running') return;
    const steps = this.d.workflows.steps(id);
    const outputs = JSON.parse(wf.outputs) as Record<string, string>;
    for (let i = index; i < steps.length; i++) {
      const s = steps[i]!;
      if (s.condition && !evaluateCondition(s.condition, s.input_key ? (outputs[s.input_key] ?? '') : '')) {
        this.d.workflows.updateStep(id, i, { status: 'skipped', completed_at: nowIso() });
        continue;
      }
      this.startStep(wf, s);
      return;
    }
    void this.complete(id);
  }

  private startStep(wf: WorkflowRow, s: StepRow): void {
    const task = this.d.tasks.create({
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
    const source = this.inputHandoff(wf, s);
    if (source) this.d.handoffs.setTarget(source.id, task.id);
    this.d.workflows.updateStep(wf.id, s.step_index, {
      status: 'running',
      task_id: task.id,
      started_at: nowIso(),
      iteration: wf.iteration,
    });
    this.d.workflows.update(wf.id, { current_step: s.step_index });
    this.publish(wf.id, 'running');
    this.d.scheduler.notify();
  }

  private inputHandoff(wf: WorkflowRow, s: StepRow) {
    if (!s.input_key) return undefined;
    const id = (JSON.parse(wf.outputs) as Record<string, string>)[`${HANDOFF_KEY}${s.input_key}`];
    return id ? this.d.handoffs.get(Number(id)) : undefined;
  }

  private promptFor(task: TaskRow): string | undefined {
    if (!task.workflow_id || task.workflow_step === null) return undefined;
    const wf = this.d.workflows.get(task.workflow_id);
    const s = wf && this.d.workflows.steps(wf.id)[task.workflow_step];
    if (!wf || !s || !s.input_key) return undefined;
    const input = (JSON.parse(wf.outputs) as Record<string, string>)[s.input_key] ?? '';
    const producer = this.d.workflows.steps(wf.id).find((x) => x.output_key === s.input_key);
    const review = parseReview(input);
    const parts = [handoffSection([{ from: producer?.agent_type ?? s.input_key, summary: '', content: input }])];
    if (review.parsed && task.agent_type === 'coder_revision')
      parts.push(`## Review to address (iteration ${wf.iteration} of ${wf.max_iterations})\n\n${reviewAsPrompt(review)}`);
    return parts.join('\n\n');
  }

  private systemPromptFor(task: TaskRow): string | undefined {
    if (!task.workflow_id || task.workflow_step === null) return undefined;
    const s = this.d.workflows.steps(task.workflow_id)[task.workflow_step];
    return s?.prompt_template ? path.resolve(this.d.config.rootDir, s.prompt_template) : undefined;
  }

  private async complete(id: number): Promise<void> {
    if (this.completing.has(id)) return;
    this.completing.add(id);
    try {
      const wf = this.d.workflows.get(id);
      if (!wf || wf.status !== 'running') return;
      const steps = this.d.workflows.steps(id);
      const lastReview = [...steps].reverse().find((s) => s.agent_type === 'reviewer' && s.status === 'completed');
      const review = lastReview ? parseReview(lastReview.output_data) : undefined;
      const result = !review ? 'completed' : review.approved ? 'approved' : 'max_iterations';
      const pr = await this.openPr(wf, review, result);
      const prUrl = pr.url;
      const done = this.d.workflows.transition(id, ['running'], 'completed', {
        completed_at: nowIso(),
        result,
        pr_url: prUrl,
        error: result === 'max_iterations' ? `Stopped after ${wf.max_iterations} iterations without the reviewer's approval` : '',
      });
      const lastTask = [...steps].reverse().find((s) => s.status === 'completed' && s.task_id);
      if (lastTask?.task_id && prUrl) this.d.tasks.update(lastTask.task_id, { pr_url: prUrl });
      if (done && pr.number) {
        // The PR lives on after the workflow: a task in review adopts it, so CI failures and review
        // comments bring an agent back (the PR loop follows tasks).
        this.d.tasks.create({
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
        this.publish(id, 'running');
        this.d.bus.emit('workflow.completed', { workflow: done });
        await this.cleanup(done);
      }
    } catch (err) {
      const wf = this.d.workflows.get(id);
      if (wf) await this.fail(wf, undefined, `Could not finish the workflow: ${coerceError(err).message}`);
    } finally {
      this.completing.delete(id);
    }
  }

  private async openPr(
    wf: WorkflowRow,
    review: ReturnType<typeof parseReview> | undefined,
    result: string,
  ): Promise<{ url: string; number: number | null; base: string }> {
    const spec = this.d.executor.repoSpec(wf.repo);
    const wtPath = this.d.workspace.worktreePath(worktreeKey({ id: 0, workflow_id: wf.id }));
    const steps = this.d.workflows.steps(wf.id);
    const base = (steps.map((s) => s.task_id && this.d.tasks.get(s.task_id)).find((t) => t && t.base_branch) as TaskRow | undefined)
      ?.base_branch;
    if (!base) return { url: '', number: null, base: '' };
    await this.d.workspace.commitAll(wtPath, `${wf.title}\n\nFactory workflow ${wf.id}.`).catch(() => false);
    if ((await this.d.workspace.commitsAhead(wtPath, base)) === 0) return { url: '', number: null, base };
    await this.d.workspace.push(spec, wtPath, wf.branch_name, base);
    if (!this.d.github.enabled) return { url: '', number: null, base };
    const counts = review ? issueCounts(review) : undefined;
    const body = [
      `## Summary\n\n${truncate(wf.description || wf.title, 4000)}`,
      review
        ? `## Review\n\n${result === 'approved' ? 'Approved by the reviewer' : 'Not approved: the iteration limit was reached'} after ${wf.iteration + 1} review round(s) (max ${wf.max_iterations}).\n\n${review.summary}`
        : '',
      counts ? `Open issues: ${counts.blocker} blocker, ${counts.major} major, ${counts.minor} minor, ${counts.nit} nit.` : '',
      review && review.issues.length ? reviewAsPrompt(review) : '',
      `---\nOpened by Factory for workflow ${wf.id} (${wf.name}), iterations: ${wf.iteration}.`,
    ]
      .filter(Boolean)
      .join('\n\n');
    const pr = await this.d.github.openPullRequest({
      owner: spec.owner,
      repo: spec.name,
      head: wf.branch_name,
      base,
      title: wf.title,
      body,
    });
    return { url: pr.html_url, number: pr.number, base };
  }

  private async fail(wf: WorkflowRow, step: StepRow | undefined, error: string): Promise<void> {
    if (step) this.d.workflows.updateStep(wf.id, step.step_index, { status: 'failed', completed_at: nowIso() });
    const done = this.d.workflows.transition(wf.id, ['running', 'pending'], 'failed', {
      error: truncate(error, 2000),
      completed_at: nowIso(),
    });
    if (!done) return;
    this.publish(wf.id, wf.status);
    this.d.bus.emit('workflow.failed', { workflow: done });
    await this.cleanup(done);
  }

  private async cleanup(wf: WorkflowRow): Promise<void> {
    try {
      await this.d.workspace.remove(this.d.executor.repoSpec(wf.repo), worktreeKey({ id: 0, workflow_id: wf.id }), wf.branch_name);
    } catch (err) {
      this.d.logger.warn({ err: coerceError(err), workflowId: wf.id }, 'could not remove workflow worktree');
    }
  }

  private publish(id: number, from: string | null): void {
    const wf = this.d.workflows.get(id);
    if (wf)
      this.d.stream.publish('workflow_status', null, {
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
