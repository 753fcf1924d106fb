// Revision mode: a new task for a Plane issue whose earlier task has an open PR continues that
// branch and PR (coder_revision) instead of starting a second one.
import type { TaskService, TaskAdopter } from '../tasks/service.js';
import type { HandoffsRepo } from '../db/repositories/workflows.js';
import type { PromptSource } from '../orchestrator/types.js';
import { truncate } from '../agents/prompt.js';

/** Runs inside TaskService.create, in the creating transaction, before the task becomes runnable. */
export const adoptOpenPullRequest: TaskAdopter = async (task, tasks) => {
  if (!task.plane_issue_id || task.workflow_id || task.branch_name) return;
  const earlier = (await tasks.list({ plane_issue_id: task.plane_issue_id, limit: 50 })).find(
    (t) => t.id !== task.id && t.status === 'in_review' && t.pr_url && t.branch_name,
  );
  if (!earlier) return;
  await tasks.update(task.id, {
    branch_name: earlier.branch_name,
    base_branch: earlier.base_branch,
    pr_url: earlier.pr_url,
    pr_number: earlier.pr_number,
    agent_type: task.agent_type === 'coder' ? 'coder_revision' : task.agent_type,
  });
  await tasks.setParent(task.id, earlier.id);
};

/** A prompt section for a task that continues an earlier task's PR: what that task did and handed off. */
export function revisionPromptSource(d: { tasks: TaskService; handoffs: HandoffsRepo }): PromptSource {
  return async (task) => {
    if (!task.parent_task_id) return undefined;
    const parent = await d.tasks.get(task.parent_task_id);
    if (!parent) return undefined;
    const handoff = (await d.handoffs.forTask(parent.id, 'from')).at(-1);
    return truncate(
      [
        `## Earlier work on this issue (task ${parent.id})`,
        `Its pull request ${parent.pr_url} is open on this branch. Build on it; your commits are pushed to the same PR.`,
        parent.result_summary ? `What it did: ${parent.result_summary}` : '',
        handoff ? `Its handoff:\n${handoff.summary}\n\n${handoff.content}` : '',
      ]
        .filter(Boolean)
        .join('\n\n'),
      8000,
    );
  };
}
