// Follows the pull requests Factory opened: failing CI and change requests bring the agent back to
// the same branch; a merge or close ends the task. Webhooks and polling both just trigger sync(),
// which compares GitHub's state with what is recorded, so a delivery seen twice acts once.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { PrWatchRepo, PrWatchRow } from '../db/repositories/pr-watch.js';
import type { SeenRepo } from '../db/repositories/seen.js';
import type { EventBus } from '../events/bus.js';
import type { TaskService } from '../tasks/service.js';
import type { QueueSignals } from '../queue/running.js';
import type { GitHubClient } from '../integrations/github.js';
import type { OutboxWorker } from '../integrations/outbox.js';
import type { BoardService } from '../board/service.js';
import type { RepoSpecOf } from '../orchestrator/repo-specs.js';
import type { WorktreeCleaner } from '../orchestrator/worktree.js';
import type { RunReport } from '../orchestrator/types.js';
import type { Workspace } from '../git/workspace.js';
import { evaluateCi, failuresPrompt, feedbackPrompt, wantsChanges, type Feedback } from './decide.js';
import { coerceError } from '../errors.js';
import { nowIso } from '../db/time.js';
import { truncate } from '../agents/prompt.js';
import type { TriggerGate } from '../auth/triggers.js';
import { parseRevision, type RevisionContext } from '../domain/revision.js';

export const GITHUB_CHANNEL = 'github';
export class PrLoop {
  private timer: NodeJS.Timeout | null = null;
  private readonly syncing = new Map<number, Promise<void>>();

  constructor(
    private readonly d: {
      config: Config;
      logger: Logger;
      tasks: TaskService;
      queue: QueueSignals;
      bus: EventBus;
      github: GitHubClient;
      watches: PrWatchRepo;
      seen: SeenRepo;
      outbox: OutboxWorker;
      board: BoardService;
      repoSpec: RepoSpecOf;
      cleaner: WorktreeCleaner;
      workspace: Workspace;
      gate: TriggerGate;
    },
  ) {
    d.outbox.register(GITHUB_CHANNEL, async (p: { owner: string; repo: string; pr: number; body: string }) => {
      await d.github.comment(p.owner, p.repo, p.pr, p.body);
      return { ok: true };
    });
    // Async listeners: the bus hands their errors to its owner's handler.
    d.bus.on('task.status', async ({ task }) => {
      if (task.status === 'in_review' && task.pr_number && !task.workflow_id) await this.watch(task);
    });
    // A task created in review adopts an open PR (a finished workflow's).
    d.bus.on('task.created', async ({ task }) => {
      if (task.status === 'in_review' && task.pr_number && !task.workflow_id) await this.watch(task);
    });
  }

  /** A run recorder: after a review-driven revision, the agent's summary is the reply on the PR. */
  readonly recordRun = async (r: RunReport): Promise<void> => {
    const ctx = parseRevision(r.task.revision_context);
    if (!ctx || r.status !== 'in_review') return;
    const w = await this.d.watches.get(r.task.id);
    if (!w) return;
    const summary = typeof r.handoff?.summary === 'string' ? r.handoff.summary : r.finalText;
    const what = ctx.kind === 'review_fix' ? 'addressed the review feedback' : 'pushed a fix for the failing checks';
    await this.d.outbox.enqueue(
      GITHUB_CHANNEL,
      { owner: w.owner, repo: w.repo, pr: w.pr_number, body: `Factory ${what}.\n\n${truncate(summary, 3000)}` },
      { orderKey: `gh:pr:${w.owner}/${w.repo}#${w.pr_number}` },
    );
  };

  private async watch(task: TaskRow): Promise<void> {
    const spec = this.d.repoSpec(task.repo);
    await this.d.watches.upsert(task.id, spec.owner, spec.name, task.pr_number!);
    // The listener runs after the status change committed, so the task may have moved on meanwhile
    // (a sync ended it): pr_state is set only while it is still in review (a guarded UPDATE that
    // keeps the status), never over the merged/closed that finish() wrote with the final status.
    await this.d.tasks.repo.transition(task.id, ['in_review'], 'in_review', { pr_state: 'open' });
  }

  /** Handles a verified GitHub webhook: finds the PR it concerns and syncs it. */
  async onWebhook(event: string, payload: Record<string, any>): Promise<{ status: string; task_id?: number }> {
    const repo = payload.repository as { name?: string; owner?: { login?: string } } | undefined;
    const owner = repo?.owner?.login;
    const name = repo?.name;
    if (!owner || !name) return { status: 'ignored' };
    const numbers = new Set<number>();
    const pr = payload.pull_request ?? payload.issue;
    if (typeof pr?.number === 'number') numbers.add(pr.number);
    for (const p of [...(payload.check_suite?.pull_requests ?? []), ...(payload.check_run?.pull_requests ?? [])])
      if (typeof p?.number === 'number') numbers.add(p.number);
    let watches = (await Promise.all([...numbers].map((n) => this.d.watches.byPr(owner, name, n)))).filter((w): w is PrWatchRow => !!w);
    if (!watches.length && (event === 'status' || event.startsWith('check_'))) {
      // Statuses name only the commit: match it against the heads we know.
      const sha = payload.sha ?? payload.check_suite?.head_sha ?? payload.check_run?.head_sha;
      watches = (await this.d.watches.open()).filter(
        (w) => w.owner === owner && w.repo === name && (!sha || w.head_sha === sha || !w.head_sha),
      );
    }
    if (!watches.length) return { status: 'ignored' };
    for (const w of watches) await this.sync(w.task_id);
    return { status: 'synced', task_id: watches[0]!.task_id };
  }

  /** Catches up every open PR (the fallback for missed webhooks). */
  async poll(): Promise<void> {
    for (const w of await this.d.watches.open()) await this.sync(w.task_id);
  }

  /** One sync per PR at a time; a sync asked for while one runs waits for it. */
  sync(taskId: number): Promise<void> {
    const prev = this.syncing.get(taskId) ?? Promise.resolve();
    const next = prev
      .then(() => this.syncOnce(taskId))
      .catch((err) => {
        this.d.logger.warn({ err: coerceError(err), taskId }, 'pull request sync failed');
      });
    this.syncing.set(taskId, next);
    void next.finally(() => {
      if (this.syncing.get(taskId) === next) this.syncing.delete(taskId);
    });
    return next;
  }

  private async syncOnce(taskId: number): Promise<void> {
    const [w, task] = await Promise.all([this.d.watches.get(taskId), this.d.tasks.get(taskId)]);
    if (!w || !task || w.state !== 'open') return;
    const pr = await this.d.github.getPullRequest(w.owner, w.repo, w.pr_number);
    if (pr.merged || pr.state === 'closed') return this.finish(task, pr.merged ? 'merged' : 'closed');
    await this.d.watches.update(taskId, { head_sha: pr.head.sha });
    const [runs, statuses] = await Promise.all([
      this.d.github.checkRuns(w.owner, w.repo, pr.head.sha),
      this.d.github.statuses(w.owner, w.repo, pr.head.sha).catch(() => []),
    ]);
    const ci = evaluateCi(runs, statuses);
    await this.d.tasks.update(taskId, { ci_conclusion: ci.state });
    // While a revision is queued or running, only record; decisions wait for its result.
    if (task.status !== 'in_review') return;
    if (ci.state === 'failure' && w.ci_handled_sha !== pr.head.sha && !w.gave_up) {
      const max = this.d.config.pr_loop.max_ci_fix_attempts;
      await this.d.watches.update(taskId, { ci_handled_sha: pr.head.sha });
      if (w.ci_fix_attempts >= max)
        return this.giveUp(
          task,
          `CI still fails after ${w.ci_fix_attempts} fix attempt(s) (pr_loop.max_ci_fix_attempts = ${max}): ${ci.failures.map((f) => f.name).join(', ')}`,
        );
      if (ci.signature === w.last_failure_signature)
        return this.giveUp(
          task,
          `the same checks failed the same way twice (${ci.failures.map((f) => f.name).join(', ')}); stopping instead of looping`,
        );
      await this.d.watches.update(taskId, { ci_fix_attempts: w.ci_fix_attempts + 1, last_failure_signature: ci.signature });
      return this.revise(task, { kind: 'ci_fix', text: failuresPrompt(ci, this.d.config.pr_loop.max_failure_chars) });
    }
    const feedback = await this.newFeedback(w);
    if (feedback.length) return this.revise(task, { kind: 'review_fix', text: feedbackPrompt(feedback) });
  }

  /**
   * Being on the allowlist is not enough: the login must also be able to push to the repository
   * (a renamed or removed account keeps no power). An unanswerable check counts as no.
   */
  private async mayPush(w: PrWatchRow, user: string): Promise<boolean> {
    let permission: string;
    try {
      permission = await this.d.github.permission(w.owner, w.repo, user);
    } catch (err) {
      this.d.logger.warn({ err: coerceError(err), user }, "could not read the commenter's repository permission; feedback skipped");
      return false;
    }
    if (['admin', 'maintain', 'write'].includes(permission)) return true;
    this.d.logger.warn(
      { user, permission, pr: `${w.owner}/${w.repo}#${w.pr_number}` },
      'PR feedback refused: the user cannot push to the repository',
    );
    await this.d.board.postSystem({
      task_id: w.task_id,
      message_type: 'error',
      message: `Refused PR feedback from ${user} on ${w.owner}/${w.repo}#${w.pr_number}: their permission on the repository is "${permission}", not write.`,
    });
    return false;
  }

  // Reviews and comments not seen before; those from people outside the allow-list are logged and skipped.
  private async newFeedback(w: PrWatchRow): Promise<Feedback[]> {
    const [reviews, reviewComments, comments] = await Promise.all([
      this.d.github.reviews(w.owner, w.repo, w.pr_number),
      this.d.github.reviewComments(w.owner, w.repo, w.pr_number),
      this.d.github.issueComments(w.owner, w.repo, w.pr_number),
    ]);
    const changesRequested = new Set(reviews.filter((r) => r.state?.toUpperCase() === 'CHANGES_REQUESTED').map((r) => r.id));
    const items: Feedback[] = [
      ...reviews.map((r) => ({
        id: `review:${r.id}`,
        kind: 'review' as const,
        user: r.user?.login ?? '',
        body: r.body ?? '',
        state: r.state,
      })),
      // Inline comments of a changes-requested review belong to that request.
      ...reviewComments.map((c) => ({
        id: `rc:${c.id}`,
        kind: 'review_comment' as const,
        user: c.user?.login ?? '',
        body: c.body ?? '',
        path: c.path,
        line: c.line,
        state: changesRequested.has(c.pull_request_review_id ?? -1) ? 'CHANGES_REQUESTED' : undefined,
      })),
      ...comments.map((c) => ({ id: `ic:${c.id}`, kind: 'comment' as const, user: c.user?.login ?? '', body: c.body ?? '' })),
    ];
    const { trigger } = this.d.config.pr_loop;
    const out: Feedback[] = [];
    const canPush = new Map<string, Promise<boolean>>();
    for (const f of items) {
      if (!(await this.d.seen.mark(`gh:${w.owner}/${w.repo}#${w.pr_number}:${f.id}`))) continue;
      if (!wantsChanges(f, trigger)) continue;
      if (!this.d.gate.allows('github', [f.user], `PR feedback on ${w.owner}/${w.repo}#${w.pr_number}`)) continue;
      if (!canPush.has(f.user)) canPush.set(f.user, this.mayPush(w, f.user));
      if (!(await canPush.get(f.user))) continue;
      out.push(f);
    }
    return out;
  }

  private async revise(task: TaskRow, ctx: RevisionContext): Promise<void> {
    // Guarded: only a task still in review is sent back (a sync's read of the task is old by now).
    const t = await this.d.tasks.transition(task.id, ['in_review'], 'queued', {
      revision_context: JSON.stringify(ctx),
      run_requested_at: nowIso(),
      completed_at: null,
    });
    if (!t) return;
    await this.d.board.postSystem({
      task_id: task.id,
      message_type: 'status',
      message: `${ctx.kind === 'ci_fix' ? 'CI failed' : 'Changes requested'} on ${task.pr_url}: the agent is revising the PR`,
    });
    this.d.queue.notify();
  }

  private async giveUp(task: TaskRow, reason: string): Promise<void> {
    await this.d.watches.update(task.id, { gave_up: reason });
    const message = `Stopped fixing ${task.pr_url}: ${reason}. A person needs to look at it.`;
    // The board message of type error reaches Telegram (forward_types) and the logs; Plane gets a comment.
    await this.d.board.postSystem({ task_id: task.id, message_type: 'error', message });
    this.d.bus.emit('task.pr_attention', { task, reason: message });
  }

  private async finish(task: TaskRow, how: 'merged' | 'closed'): Promise<void> {
    // A revision still running finishes first; the next sync then ends the task (the watch stays open).
    if (task.status === 'in_progress') return;
    const to = how === 'merged' ? 'done' : 'cancelled';
    // The guarded transition comes first and carries pr_state, so the scheduler claiming the queued
    // revision meanwhile (between awaits) cannot leave the watch closed on a task that still runs.
    const done = await this.d.tasks.transition(task.id, ['in_review', 'queued'], to, {
      pr_state: how,
      completed_at: nowIso(),
      run_requested_at: null,
      revision_context: '',
      ...(how === 'closed' ? { error: 'The pull request was closed without merging' } : {}),
    });
    if (!done) {
      // Lost a race: a revision was claimed or has just settled. The watch stays open; the next sync ends the task.
      const current = await this.d.tasks.get(task.id);
      if (current && ['in_progress', 'in_review', 'queued'].includes(current.status)) return;
      // Any other state (failed, cancelled, ...): the PR's end is still recorded and the watch closed.
      await this.d.watches.update(task.id, { state: how });
      await this.d.tasks.update(task.id, { pr_state: how });
      return;
    }
    await this.d.watches.update(task.id, { state: how });
    const spec = this.d.repoSpec(task.repo);
    await this.d.cleaner.remove(spec, done);
    if (how === 'merged' && this.d.config.pr_loop.delete_branch_on_merge && task.branch_name) {
      await this.d.workspace
        .deleteRemoteBranch(spec, task.branch_name, task.base_branch)
        .catch((err) => this.d.logger.warn({ err: coerceError(err), taskId: task.id }, 'could not delete the merged branch'));
    }
  }

  start(): void {
    if (this.timer || !this.d.github.enabled || !this.d.config.pr_loop.enabled) return;
    this.timer = setInterval(() => {
      void this.poll();
    }, this.d.config.pr_loop.poll_seconds * 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all([...this.syncing.values()]);
  }
}
