// The publish stage: commit what the agent left, push the branch, open (or reuse) the pull request.
import type { TaskRow } from '../db/repositories/tasks.js';
import type { RepoSpec } from '../git/repo-spec.js';
import type { Workspace, Worktree } from '../git/workspace.js';
import { isTransientGitHubError, type GitHubClient } from '../integrations/github.js';
import type { PendingPullRequests } from '../prloop/pending-pr.js';
import { truncate } from '../agents/prompt.js';
import type { ExecResult } from '../queue/types.js';
import type { LogWriter } from './log-writer.js';

export interface PublisherDeps {
  workspace: Workspace;
  github: GitHubClient;
  /** Where a PR GitHub would not take right now waits to be opened. */
  pendingPrs: Pick<PendingPullRequests, 'defer'>;
}

export class PullRequestPublisher {
  constructor(private readonly d: PublisherDeps) {}

  /** Commits, pushes and opens (or reuses) the pull request of a standalone task. */
  async publish(task: TaskRow, log: LogWriter, wt: Worktree, spec: RepoSpec, summary: string): Promise<ExecResult> {
    const committed = await this.d.workspace.commitAll(wt.path, `${task.title}\n\nFactory task ${task.id} (${task.agent_type}).`);
    if (committed) log.system("committed the agent's uncommitted changes");
    const ahead = await this.d.workspace.commitsAhead(wt.path, wt.baseBranch);
    if (ahead === 0) {
      log.system('no changes compared with the base branch: nothing to push, no pull request');
      return { status: 'done', patch: { result_summary: `No code changes. ${summary}`.trim() } };
    }
    await this.d.workspace.push(spec, wt.path, wt.branch, wt.baseBranch);
    log.system(`pushed ${ahead} commit(s) to ${wt.branch}`);
    if (task.pr_number && task.pr_url) {
      log.system(`updated the existing pull request ${task.pr_url}`);
      return { status: 'in_review', patch: { pr_url: task.pr_url, pr_number: task.pr_number } };
    }
    if (!this.d.github.enabled) {
      log.system('GITHUB_TOKEN is not set: the branch is pushed but no pull request was opened');
      return { status: 'in_review', patch: {} };
    }
    const request = {
      taskId: task.id,
      owner: spec.owner,
      repo: spec.name,
      head: wt.branch,
      base: wt.baseBranch,
      title: task.title,
      body: prBodyFor(task, summary),
    };
    let pr;
    try {
      pr = await this.d.github.openPullRequest(request);
    } catch (err) {
      if (!isTransientGitHubError(err)) throw err;
      // The work is done and pushed: the PR is GitHub's problem, not the task's. It is opened later.
      const note = await this.d.pendingPrs.defer(request, (err as Error).message);
      log.system(note);
      return { status: 'in_review', patch: { error: note } };
    }
    log.system(`opened pull request ${pr.html_url}`);
    return { status: 'in_review', patch: { pr_url: pr.html_url, pr_number: pr.number } };
  }
}

function prBodyFor(task: TaskRow, summary: string): string {
  return [
    summary ? `## Summary\n\n${summary}` : '',
    task.description ? `## Task\n\n${truncate(task.description, 4000)}` : '',
    `---\nOpened by Factory for task ${task.id} (${task.agent_type}).`,
  ]
    .filter(Boolean)
    .join('\n\n');
}
