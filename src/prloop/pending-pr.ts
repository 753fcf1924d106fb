// Pull requests that could not be opened when the task finished (GitHub down, rate limited, no answer
// even after the client's own retries). The branch is pushed already: the task waits in review with a
// note saying so, and the outbox keeps trying to open the PR — durable across restarts, at most one
// PR per branch (openPullRequest reuses an open one), and the PR loop starts following it once opened.
import type { Logger } from 'pino';
import { isTransientGitHubError, type GitHubClient, type GitHubError } from '../integrations/github.js';
import { DeliveryError, type OutboxWorker } from '../integrations/outbox.js';
import type { TaskService } from '../tasks/service.js';

export const PR_OPEN_CHANNEL = 'github.open_pr';
/** The start of a task's error while its PR waits to be opened. */
export const PR_PENDING_NOTE = 'Pull request not opened yet';

export interface PendingPullRequest {
  taskId: number;
  owner: string;
  repo: string;
  head: string;
  base: string;
  title: string;
  body: string;
}

export class PendingPullRequests {
  constructor(private readonly d: { outbox: OutboxWorker; github: GitHubClient; tasks: TaskService; logger: Logger }) {
    d.outbox.register(PR_OPEN_CHANNEL, (p: PendingPullRequest) => this.open(p));
  }

  /** Queues the PR; the returned note is the task's error until it is opened. */
  async defer(p: PendingPullRequest, reason: string): Promise<string> {
    // Awaited: the outbox row is stored before the task settles in review with the note.
    await this.d.outbox.enqueue(PR_OPEN_CHANNEL, p, {
      orderKey: `gh:open:${p.owner}/${p.repo}:${p.head}`,
      dedupeKey: `gh:open:${p.taskId}:${p.head}`,
    });
    this.d.logger.warn(
      { taskId: p.taskId, branch: p.head },
      'pull request deferred: GitHub did not accept it, retrying through the outbox',
    );
    return `${PR_PENDING_NOTE} (${reason}); the branch ${p.head} is pushed and Factory keeps trying.`;
  }

  private async open(p: PendingPullRequest): Promise<unknown> {
    const task = await this.d.tasks.get(p.taskId);
    if (!task) return { skipped: 'task deleted' };
    // The run that deferred it may not have settled yet: the task reaches in_review in a moment.
    if (task.status === 'in_progress') throw new DeliveryError('the task has not settled yet', { retryAfterMs: 1000 });
    if (task.status !== 'in_review') return { skipped: `task is ${task.status}` };
    if (task.pr_number) return { skipped: 'the task has a pull request already' };
    let pr;
    try {
      pr = await this.d.github.openPullRequest(p);
    } catch (err) {
      if (isTransientGitHubError(err)) throw new DeliveryError((err as Error).message, { status: (err as GitHubError).status, cause: err });
      // GitHub's definite no (validation, no access): say so on the task instead of retrying.
      await this.d.tasks.update(p.taskId, {
        error: `Pull request could not be opened: ${(err as Error).message}. The branch ${p.head} is pushed.`,
      });
      return { refused: (err as Error).message };
    }
    const updated = await this.d.tasks.update(p.taskId, { pr_url: pr.html_url, pr_number: pr.number, error: '' });
    // Same status, now with a PR: listeners (PR loop, notifications) take it from here.
    if (updated) await this.d.tasks.announce(updated, 'in_review');
    this.d.logger.info({ taskId: p.taskId, pr: pr.html_url }, 'opened the deferred pull request');
    return { pr: pr.number };
  }
}
