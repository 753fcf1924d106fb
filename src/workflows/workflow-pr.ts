// A finished workflow's branch becomes one pull request: the worktree's last changes committed,
// the branch pushed, and a PR whose body carries the last review's verdict and open issues.
import type { WorkflowRow, WorkflowsRepo } from '../db/repositories/workflows.js';
import type { TaskService } from '../tasks/service.js';
import type { Workspace } from '../git/workspace.js';
import type { GitHubClient } from '../integrations/github.js';
import type { RepoSpecOf } from '../orchestrator/repo-specs.js';
import { worktreeKey } from '../orchestrator/worktree.js';
import { truncate } from '../agents/prompt.js';
import { issueCounts, reviewAsPrompt, type Review } from './review.js';

export interface WorkflowPrDeps {
  repoSpec: RepoSpecOf;
  workspace: Workspace;
  github: GitHubClient;
  workflows: WorkflowsRepo;
  tasks: TaskService;
}

/** No PR (url '') when no step has a base branch, nothing is ahead of it, or GitHub is not configured. */
export async function openWorkflowPr(
  d: WorkflowPrDeps,
  wf: WorkflowRow,
  review: Review | undefined,
  result: string,
): Promise<{ url: string; number: number | null; base: string }> {
  const spec = d.repoSpec(wf.repo);
  const wtPath = d.workspace.worktreePath(worktreeKey({ id: 0, workflow_id: wf.id }));
  // The base branch of the first step (in step order) whose task has one.
  let base: string | undefined;
  for (const s of await d.workflows.steps(wf.id)) {
    const t = s.task_id ? await d.tasks.get(s.task_id) : undefined;
    if (t?.base_branch) {
      base = t.base_branch;
      break;
    }
  }
  if (!base) return { url: '', number: null, base: '' };
  await d.workspace.commitAll(wtPath, `${wf.title}\n\nFactory workflow ${wf.id}.`).catch(() => false);
  if ((await d.workspace.commitsAhead(wtPath, base)) === 0) return { url: '', number: null, base };
  await d.workspace.push(spec, wtPath, wf.branch_name, base);
  if (!d.github.enabled) return { url: '', number: null, base };
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
  const pr = await d.github.openPullRequest({
    owner: spec.owner,
    repo: spec.name,
    head: wf.branch_name,
    base,
    title: wf.title,
    body,
  });
  return { url: pr.html_url, number: pr.number, base };
}
