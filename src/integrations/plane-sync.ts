// Turns Plane webhooks and comments into tasks and answers; keeping Plane's issues in step with the
// tasks is plane-updates.ts. A Plane outage never blocks a task: updates wait in the outbox, in order.
import type { Logger } from 'pino';
import { AGENT_TYPES, type Config } from '../config.js';
import type { SeenRepo } from '../db/repositories/seen.js';
import type { EventBus } from '../events/bus.js';
import type { TaskService } from '../tasks/service.js';
import type { QueueSignals } from '../queue/running.js';
import type { ClarificationService } from '../orchestrator/clarify.js';
import type { OutboxWorker } from './outbox.js';
import { PlaneClient } from './plane.js';
import { htmlToText } from './html.js';
import { labelsToTask, type PlaneEvent } from './plane-webhook.js';
import { parseClarification } from '../orchestrator/clarification.js';
import { coerceError } from '../errors.js';
import { parseRepoSpec } from '../git/repo-spec.js';
import type { TriggerGate } from '../auth/triggers.js';
import { KeyedSerial } from '../async/serial.js';
import { PlaneUpdates } from './plane-updates.js';

export { PLANE_CHANNEL } from './plane-updates.js';

export interface WebhookResult {
  status: string;
  task_id?: number;
  reason?: string;
}

const REFUSED = { status: 'ignored', reason: 'sender not allowed (plane.allowed_members)' } as const;

export class PlaneSync {
  readonly client: PlaneClient;
  /** Tasks and workflows → Plane issues (states, comments), through the outbox. */
  private readonly updates: PlaneUpdates;
  private pollTimer: NodeJS.Timeout | null = null;
  /** Webhook work on one issue runs one at a time (key `issue:<id>`), see handleParsed. */
  private readonly serial = new KeyedSerial();

  constructor(
    private readonly d: {
      config: Config;
      logger: Logger;
      tasks: TaskService;
      queue: QueueSignals;
      bus: EventBus;
      outbox: OutboxWorker;
      seen: SeenRepo;
      clarify: ClarificationService;
      gate: TriggerGate;
    },
  ) {
    const p = d.config.plane;
    this.client = new PlaneClient({
      baseUrl: p.base_url,
      apiKey: d.config.secrets.planeApiKey,
      workspace: p.workspace_slug,
      projectId: p.project_id,
    });
    this.updates = new PlaneUpdates({ ...d, client: this.client });
  }

  get enabled(): boolean {
    return this.client.enabled;
  }

  private labelCache: { at: number; names: Map<string, string> } | null = null;

  // Cloud (v2) payloads name labels by id only; their names come from the API, cached for five minutes.
  private async labelNames(ids: string[]): Promise<string[]> {
    if (!ids.length || !this.client.enabled) return [];
    if (!this.labelCache || Date.now() - this.labelCache.at > 300_000 || ids.some((id) => !this.labelCache!.names.has(id))) {
      try {
        const list = await this.client.listLabels();
        this.labelCache = { at: Date.now(), names: new Map(list.map((l) => [l.id, l.name])) };
      } catch (err) {
        this.d.logger.warn({ err: coerceError(err) }, 'could not read Plane labels; using plane.default_repo and the coder agent');
        return [];
      }
    }
    return ids.map((id) => this.labelCache!.names.get(id)).filter((n): n is string => Boolean(n));
  }

  /** Handles a verified webhook. Never runs an agent inline: tasks are queued. */
  async handleWebhook(ev: PlaneEvent): Promise<WebhookResult> {
    if (ev.kind === 'issue' && !ev.labels.length && ev.labelIds.length) ev = { ...ev, labels: await this.labelNames(ev.labelIds) };
    return this.handleParsed(ev);
  }

  private async handleParsed(ev: PlaneEvent): Promise<WebhookResult> {
    if (ev.kind === 'other') return { status: 'ignored', reason: `event ${ev.event}` };
    if (ev.kind === 'comment') return this.onComment(ev.issueId, ev.commentId, ev.html, ev.actor, ev.actorIds);
    if (ev.action !== 'create' && ev.action !== 'update') return { status: 'ignored', reason: `action ${ev.action}` };
    const states = this.d.config.plane.states;
    const isState = (key: string, name: string) => (states[key] ? ev.stateId === states[key] : ev.stateName.toLowerCase() === name);
    // An edit of another field on a queued issue is not a new request.
    if (ev.action === 'update' && ev.field && !['state', 'state_id'].includes(ev.field))
      return { status: 'ignored', reason: `field ${ev.field} changed` };
    const cancel = isState('cancelled', 'cancelled');
    if (!cancel && !isState('queued', 'queued')) return { status: 'ok' };
    if (ev.externalSource === 'factory') return { status: 'ignored', reason: 'issue created by Factory' };
    if (!this.d.gate.allows('plane', ev.actorIds, cancel ? `cancelling issue ${ev.issueId}` : `queueing issue ${ev.issueId}`))
      return REFUSED;
    // "Is a task for this issue active?" and the creation of one must not interleave with another
    // delivery about the same issue (two quick updates, or a cancel): they run one at a time per issue.
    // (Across processes nothing in SQL ties them together yet: a partial UNIQUE index on active tasks'
    // plane_issue_id would.)
    return this.serial.run(`issue:${ev.issueId}`, () => (cancel ? this.cancelIssue(ev.issueId) : this.queueIssue(ev)));
  }

  private async queueIssue(ev: Extract<PlaneEvent, { kind: 'issue' }>): Promise<WebhookResult> {
    // Plane retries with a new delivery id, so deduplicate on what the delivery describes. The mark is
    // INSERT … ON CONFLICT DO NOTHING: of two copies arriving together, exactly one gets past it.
    if (!(await this.d.seen.mark(`plane:delivery:${ev.issueId}:${ev.updatedAt}:${ev.field ?? ''}`))) {
      const t = (await this.d.tasks.repo.list({ plane_issue_id: ev.issueId, limit: 1 }))[0];
      return { status: 'already_exists', task_id: t?.id };
    }
    const active = (await this.d.tasks.repo.list({ plane_issue_id: ev.issueId, limit: 20 })).find((t) =>
      ['queued', 'in_progress', 'waiting_for_input'].includes(t.status),
    );
    if (active) return { status: 'already_exists', task_id: active.id };
    const labels = labelsToTask(ev.labels, AGENT_TYPES);
    const repo = labels.repo || this.d.config.plane.default_repo;
    if (!repo) return { status: 'ignored', reason: 'no repo: add a repo:<name> label or set plane.default_repo' };
    try {
      parseRepoSpec(repo, {
        repos: this.d.config.repos,
        defaultOrg: this.d.config.default_org,
        cloneBase: this.d.config.github.clone_base,
      });
    } catch (err) {
      return { status: 'ignored', reason: coerceError(err).message };
    }
    const task = await this.d.tasks.create({
      title: ev.name || `Plane issue ${ev.sequenceId ?? ev.issueId}`,
      description: ev.description,
      repo,
      agent_type: labels.agentType ?? 'coder',
      plane_issue_id: ev.issueId,
      plane_sequence_id: ev.sequenceId,
      run: true,
    });
    this.d.queue.notify();
    return { status: task.parent_task_id ? 'revision_task_created' : 'task_created', task_id: task.id };
  }

  private async cancelIssue(issueId: string): Promise<WebhookResult> {
    const active = (await this.d.tasks.repo.list({ plane_issue_id: issueId, limit: 20 })).filter((t) =>
      ['queued', 'in_progress', 'waiting_for_input'].includes(t.status),
    );
    for (const t of active) void this.d.queue.cancel(t.id, 15_000);
    return active.length ? { status: 'cancelled', task_id: active[0]!.id } : { status: 'ok' };
  }

  private async onComment(issueId: string, commentId: string, html: string, actor: string, actorIds: string[]): Promise<WebhookResult> {
    const seen = await this.d.seen.has(`plane:comment:${commentId}`);
    if (seen?.own) return { status: 'ignored', reason: 'own comment' };
    if (seen) return { status: 'ignored', reason: 'already handled' };
    const task = (await this.d.tasks.repo.list({ plane_issue_id: issueId, limit: 1 }))[0];
    if (!task || task.status !== 'waiting_for_input') return { status: 'ignored', reason: 'no task waiting for input' };
    const text = htmlToText(html);
    if (!text) return { status: 'ignored', reason: 'empty comment' };
    // The check above is a shortcut; this mark (INSERT … ON CONFLICT DO NOTHING) is the guard: of a
    // webhook and a poll reading the same comment at once, one goes on.
    if (!(await this.d.seen.mark(`plane:comment:${commentId}`))) return { status: 'ignored', reason: 'already handled' };
    // After marking: a refused comment is not re-read by every poll.
    if (!this.d.gate.allows('plane', actorIds, `an answer to task ${task.id}`)) return REFUSED;
    try {
      // A guarded transition (waiting_for_input → queued): of two answers, the first wins.
      await this.d.clarify.answer(task.id, text, `plane:${actor || 'unknown'}`);
      return { status: 'resumed', task_id: task.id };
    } catch (err) {
      return { status: 'resume_failed', task_id: task.id, reason: coerceError(err).message };
    }
  }

  /** Fallback for missed webhooks: reads the comments of issues whose task waits for an answer. */
  async pollWaiting(): Promise<void> {
    if (!this.enabled) return;
    for (const task of await this.d.tasks.repo.byStatus('waiting_for_input')) {
      if (!task.plane_issue_id) continue;
      const asked = Date.parse(parseClarification(task.clarification_context).asked_at ?? task.updated_at);
      let comments;
      try {
        comments = await this.client.listComments(task.plane_issue_id);
      } catch (err) {
        this.d.logger.warn({ err: coerceError(err), taskId: task.id }, 'could not read Plane comments');
        continue;
      }
      // The first reply after the question answers it (the list is newest first).
      const replies = [];
      for (const c of comments) if (Date.parse(c.created_at) > asked && !(await this.d.seen.has(`plane:comment:${c.id}`))) replies.push(c);
      replies.sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at));
      const first = replies[0];
      const author = first?.actor ?? first?.created_by ?? '';
      if (first) await this.onComment(task.plane_issue_id, first.id, first.comment_html, author, [author]);
    }
  }

  /** Resolves when the work of events seen so far (and webhooks under way) is done. */
  async idle(): Promise<void> {
    await Promise.all([this.serial.idle(), this.updates.idle()]);
  }

  start(): void {
    if (!this.enabled || this.pollTimer) return;
    this.pollTimer = setInterval(() => {
      this.pollWaiting().catch((err) => this.d.logger.warn({ err: coerceError(err) }, 'Plane comment poll failed'));
    }, this.d.config.plane.poll_interval_seconds * 1000);
    this.pollTimer.unref();
  }

  stop(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
  }
}
