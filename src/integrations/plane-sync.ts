// Keeps Plane issues in step with tasks (through the outbox) and turns Plane webhooks and comments
// into tasks and answers. A Plane outage never blocks a task: updates wait in the outbox, in order.
import type { Logger } from 'pino';
import { AGENT_TYPES, type Config } from '../config.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { WorkflowRow } from '../db/repositories/workflows.js';
import type { SeenRepo } from '../db/repositories/seen.js';
import type { DomainEvents, EventBus } from '../events/bus.js';
import type { TaskService } from '../tasks/service.js';
import type { QueueSignals } from '../queue/running.js';
import type { ClarificationService } from '../orchestrator/clarify.js';
import type { OutboxWorker } from './outbox.js';
import { DeliveryError } from './outbox.js';
import { escapeHtml, PlaneClient } from './plane.js';
import { htmlToText } from './html.js';
import { labelsToTask, type PlaneEvent } from './plane-webhook.js';
import { parseClarification } from '../orchestrator/clarification.js';
import { coerceError } from '../errors.js';
import { parseRepoSpec } from '../git/repo-spec.js';
import type { TriggerGate } from '../auth/triggers.js';
import { KeyedSerial } from '../async/serial.js';

export const PLANE_CHANNEL = 'plane';
type StateKey = 'queued' | 'in_progress' | 'in_review' | 'done' | 'failed' | 'cancelled' | 'waiting_for_input';
type PlaneOp =
  | { op: 'create'; taskId: number }
  | { op: 'state'; taskId?: number; issueId?: string; state: StateKey }
  | { op: 'comment'; taskId?: number; issueId?: string; html: string };

export interface WebhookResult {
  status: string;
  task_id?: number;
  reason?: string;
}

const REFUSED = { status: 'ignored', reason: 'sender not allowed (plane.allowed_members)' } as const;

export class PlaneSync {
  readonly client: PlaneClient;
  private pollTimer: NodeJS.Timeout | null = null;
  private readonly progress = new Map<number, { count: number; lastAt: number }>();
  /**
   * Event listeners (and progress comments) run one after another in event order, so a task's Plane
   * updates are queued in the order they happened, as with the synchronous database. Webhook work
   * on one issue runs one at a time too (key `issue:<id>`), see handleParsed.
   */
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
    d.outbox.register(PLANE_CHANNEL, (payload: PlaneOp, ctx) => this.deliver(payload, ctx.signal));
    if (this.client.enabled) this.listen();
  }

  get enabled(): boolean {
    return this.client.enabled;
  }

  private async enqueue(op: PlaneOp, key: string, dedupeKey?: string): Promise<void> {
    await this.d.outbox.enqueue(PLANE_CHANNEL, op, { orderKey: key, dedupeKey });
  }

  private async forTask(task: TaskRow, state: StateKey | null, comment?: string): Promise<void> {
    const key = `plane:task:${task.id}`;
    if (state) await this.enqueue({ op: 'state', taskId: task.id, state }, key);
    if (comment) await this.enqueue({ op: 'comment', taskId: task.id, html: comment }, key);
  }

  private async forWorkflow(wf: WorkflowRow, state: StateKey, comment?: string): Promise<void> {
    if (!wf.plane_issue_id) return;
    const key = `plane:workflow:${wf.id}`;
    await this.enqueue({ op: 'state', issueId: wf.plane_issue_id, state }, key);
    if (comment) await this.enqueue({ op: 'comment', issueId: wf.plane_issue_id, html: comment }, key);
  }

  /** A bus listener whose work runs in event order (see `serial`); the bus logs its failures. */
  private on<K extends keyof DomainEvents & string>(event: K, fn: (payload: DomainEvents[K]) => Promise<unknown>): void {
    this.d.bus.on(event, (payload) =>
      this.serial.run('events', async () => {
        await fn(payload);
      }),
    );
  }

  private listen(): void {
    // Progress notes of a running agent (agentOutput keeps its own order and rate).
    this.d.bus.on('agent.text', ({ task, text }) => this.agentOutput(task, text));
    const linked = async (t: TaskRow) =>
      !t.workflow_id && (t.plane_issue_id !== '' || (await this.d.outbox.repo.byDedupeKey(`plane:create:${t.id}`)) !== undefined);
    this.on('task.created', async ({ task }) => {
      // Tasks made through the API get a Plane issue; the external_source marks it as ours for the webhook.
      // (Only new work: a task that adopts an existing PR is created in review and needs no issue.)
      if (!task.plane_issue_id && !task.workflow_id && task.status === 'queued')
        await this.enqueue({ op: 'create', taskId: task.id }, `plane:task:${task.id}`, `plane:create:${task.id}`);
    });
    this.on('agent.started', async ({ task, branch }) => {
      if (await linked(task))
        await this.forTask(
          task,
          'in_progress',
          `<p>🔧 Agent started (${escapeHtml(task.agent_type)}) on branch <code>${escapeHtml(branch)}</code>.</p>`,
        );
    });
    this.on('task.status', async ({ task }) => {
      if (!(await linked(task))) return;
      switch (task.status) {
        case 'in_review':
          return this.forTask(
            task,
            'in_review',
            `<p>✅ Pull request: <a href="${escapeHtml(task.pr_url)}">${escapeHtml(task.pr_url)}</a></p>${task.result_summary ? `<p>${escapeHtml(task.result_summary)}</p>` : ''}${task.preview_url ? `<p>Preview: ${escapeHtml(task.preview_url)}</p>` : ''}`,
          );
        case 'done':
          return this.forTask(task, 'done', task.result_summary ? `<p>✅ Done: ${escapeHtml(task.result_summary)}</p>` : undefined);
        case 'failed':
          return this.forTask(task, 'failed', `<p>❌ Agent failed: ${escapeHtml(task.error.slice(0, 1500))}</p>`);
        case 'cancelled':
          return this.forTask(task, 'cancelled', '<p>🛑 Task cancelled.</p>');
        case 'waiting_for_input': {
          const q = parseClarification(task.clarification_context);
          const round = q.history.length;
          const options = q.options?.length ? `<ul>${q.options.map((o) => `<li>${escapeHtml(o)}</li>`).join('')}</ul>` : '';
          await this.enqueue({ op: 'state', taskId: task.id, state: 'waiting_for_input' }, `plane:task:${task.id}`);
          await this.enqueue(
            {
              op: 'comment',
              taskId: task.id,
              html: `<p>❓ The agent needs an answer: ${escapeHtml(q.pending_question ?? '')}</p>${options}<p>Reply with a comment on this issue.</p>`,
            },
            `plane:task:${task.id}`,
            `plane:question:${task.id}:${round}`,
          );
          return;
        }
        default:
          return;
      }
    });
    this.on('task.preview', async ({ task, url }) => {
      if (!(await linked(task))) return;
      await this.enqueue(
        { op: 'comment', taskId: task.id, html: `<p>🚀 Preview deployed: <a href="${escapeHtml(url)}">${escapeHtml(url)}</a></p>` },
        `plane:task:${task.id}`,
        `plane:preview:${task.id}:${url}`,
      );
    });
    this.on('task.pr_attention', async ({ task, reason }) => {
      if (await linked(task)) await this.forTask(task, null, `<p>⚠️ ${escapeHtml(reason)}</p>`);
    });
    // The state moves back to in_progress when the agent actually starts again (agent.started).
    this.on('task.answered', async ({ task }) => {
      if (await linked(task)) await this.forTask(task, null, '<p>▶️ Answer received; the agent resumes.</p>');
    });
    this.on('task.question_reminder', async ({ task, question }) => {
      if (await linked(task)) await this.forTask(task, null, `<p>⏰ Still waiting for an answer: ${escapeHtml(question)}</p>`);
    });
    this.on('workflow.started', ({ workflow }) =>
      this.forWorkflow(workflow, 'in_progress', `<p>🚀 Workflow ${escapeHtml(workflow.name)} started.</p>`),
    );
    this.on('workflow.completed', ({ workflow }) =>
      this.forWorkflow(
        workflow,
        workflow.pr_url ? 'in_review' : 'done',
        `<p>✅ Workflow ${escapeHtml(workflow.name)} finished (${escapeHtml(workflow.result)}).${workflow.pr_url ? ` Pull request: <a href="${escapeHtml(workflow.pr_url)}">${escapeHtml(workflow.pr_url)}</a>` : ''}</p>`,
      ),
    );
    this.on('workflow.failed', ({ workflow }) =>
      this.forWorkflow(workflow, 'failed', `<p>❌ Workflow failed: ${escapeHtml(workflow.error.slice(0, 1500))}</p>`),
    );
    this.on('workflow.cancelled', ({ workflow }) => this.forWorkflow(workflow, 'cancelled', '<p>🛑 Workflow cancelled.</p>'));
  }

  /** Called for every assistant text of a running agent: a short progress comment every N outputs, at most once a minute. */
  async agentOutput(task: TaskRow, summary: string): Promise<void> {
    if (!this.enabled || task.workflow_id || !task.plane_issue_id || !summary.trim()) return;
    const every = this.d.config.plane.progress_every;
    if (every <= 0) return;
    const p = this.progress.get(task.id) ?? { count: 0, lastAt: 0 };
    p.count++;
    this.progress.set(task.id, p);
    if (p.count % every !== 0 || Date.now() - p.lastAt < 60_000) return;
    p.lastAt = Date.now();
    const html = `<p>Progress (step ${p.count}): ${escapeHtml(summary.slice(0, 300))}</p>`;
    await this.serial.run('events', () => this.forTask(task, null, html));
  }

  private async deliver(op: PlaneOp, signal: AbortSignal): Promise<unknown> {
    if (!this.client.enabled) return { skipped: 'plane not configured' };
    if (op.op === 'create') {
      const task = await this.d.tasks.get(op.taskId);
      if (!task || task.plane_issue_id) return { skipped: 'already linked' };
      const state = this.d.config.plane.states.queued;
      const issue = await this.client.createIssue(
        { name: task.title, description_html: `<p>${escapeHtml(task.description)}</p>`, state, external_id: `factory-task-${task.id}` },
        signal,
      );
      // Without an id the task would stay unlinked for good: not delivered, tried again later.
      if (typeof issue?.id !== 'string' || !issue.id) throw new DeliveryError('Plane answered the create without an issue id');
      await this.d.tasks.update(task.id, { plane_issue_id: issue.id, plane_sequence_id: issue.sequence_id ?? null });
      return { issue_id: issue.id };
    }
    const task = op.taskId ? await this.d.tasks.get(op.taskId) : undefined;
    const issueId = op.issueId || task?.plane_issue_id;
    if (!issueId) {
      if (task && (await this.d.outbox.repo.byDedupeKey(`plane:create:${task.id}`)))
        throw new DeliveryError('the Plane issue is not created yet');
      return { skipped: 'no plane issue' };
    }
    if (op.op === 'state') {
      const stateId = this.d.config.plane.states[op.state];
      if (!stateId) return { skipped: `no plane.states.${op.state} configured` };
      await this.client.setState(issueId, stateId, signal);
      return { state: stateId };
    }
    const c = await this.client.comment(issueId, op.html, signal);
    if (c?.id) await this.d.seen.mark(`plane:comment:${c.id}`, true);
    return { comment_id: c?.id };
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
  idle(): Promise<void> {
    return this.serial.idle();
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
