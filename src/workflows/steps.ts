// What a workflow step adds to the task pipeline: its prompt (the input handoff, and for a revision
// the review to address), the system prompt file its step names, and how its success is finished
// (committed and pushed on the workflow branch with a handoff, never a PR of its own).
import path from 'node:path';
import type { Config } from '../config.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { HandoffsRepo, WorkflowsRepo } from '../db/repositories/workflows.js';
import type { Workspace } from '../git/workspace.js';
import type { Finisher, FinisherFor } from '../orchestrator/types.js';
import { buildHandoff, handoffSection } from './handoff.js';
import { parseReview, reviewAsPrompt } from './review.js';

export interface WorkflowStepsDeps {
  config: Config;
  workflows: WorkflowsRepo;
  handoffs: HandoffsRepo;
  workspace: Workspace;
}

export class WorkflowSteps {
  constructor(private readonly d: WorkflowStepsDeps) {}

  /** A step never opens a PR: its work is committed and pushed as a checkpoint of the workflow's branch. */
  readonly finisherFor: FinisherFor = (task) => (task.workflow_id ? this.finishStep : undefined);

  private readonly finishStep: Finisher = async (t, wt, spec, report) => {
    const ws = this.d.workspace;
    await ws.commitAll(wt.path, `${t.title}\n\nFactory workflow ${t.workflow_id}, step ${t.workflow_step} (${t.agent_type}).`);
    if ((await ws.commitsAhead(wt.path, wt.baseBranch)) > 0) await ws.push(spec, wt.path, wt.branch, wt.baseBranch);
    const changed = await ws.changedFiles(wt.path, wt.baseBranch).catch(() => []);
    const h = buildHandoff(t.agent_type, report.handoff, report.finalText, changed);
    await this.d.handoffs.create({ from_task_id: t.id, to_task_id: null, workflow_id: t.workflow_id, ...h });
    return { status: 'done' };
  };

  /** Step tasks get the input handoff (and for revisions the review) in their prompt. */
  async promptFor(task: TaskRow): Promise<string | undefined> {
    if (!task.workflow_id || task.workflow_step === null) return undefined;
    const wf = await this.d.workflows.get(task.workflow_id);
    const steps = wf ? await this.d.workflows.steps(wf.id) : [];
    const s = steps[task.workflow_step];
    if (!wf || !s || !s.input_key) return undefined;
    const input = (JSON.parse(wf.outputs) as Record<string, string>)[s.input_key] ?? '';
    const producer = steps.find((x) => x.output_key === s.input_key);
    const review = parseReview(input);
    const parts = [handoffSection([{ from: producer?.agent_type ?? s.input_key, summary: '', content: input }])];
    if (review.parsed && task.agent_type === 'coder_revision')
      parts.push(`## Review to address (iteration ${wf.iteration} of ${wf.max_iterations})\n\n${reviewAsPrompt(review)}`);
    return parts.join('\n\n');
  }

  /** The system prompt file a step names in its prompt_template, if any. */
  async systemPromptFor(task: TaskRow): Promise<string | undefined> {
    if (!task.workflow_id || task.workflow_step === null) return undefined;
    const s = (await this.d.workflows.steps(task.workflow_id))[task.workflow_step];
    return s?.prompt_template ? path.resolve(this.d.config.rootDir, s.prompt_template) : undefined;
  }
}
