// Keeps Plane issues in step with tasks and workflows: each domain event becomes an outbox row
// (a state change, a comment, a new issue), delivered in order per task; a running agent's text
// becomes a progress comment now and then.
import type { Config } from '../config.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { WorkflowRow } from '../db/repositories/workflows.js';
import type { SeenRepo } from '../db/repositories/seen.js';
import type { DomainEvents, EventBus } from '../events/bus.js';
import type { TaskService } from '../tasks/service.js';
import type { OutboxWorker } from './outbox.js';
import { DeliveryError } from './outbox.js';
import { escapeHtml, type PlaneClient } from './plane.js';
import { KeyedSerial } from '../async/serial.js';
import { parseClarification } from '../orchestrator/clarification.js';

export const PLANE_CHANNEL = 'plane';
type StateKey = 'queued' | 'in_progress' | 'in_review' | 'done' | 'failed' | 'cancelled' | 'waiting_for_input';
type PlaneOp =
  | { op: 'create'; taskId: number }
  | { op: 'state'; taskId?: number; issueId?: string; state: StateKey }
  | { op: 'comment'; taskId?: number; issueId?: string; html: string };

export interface PlaneUpdatesDeps {
  config: Config;
  tasks: TaskService;
  bus: EventBus;
  outbox: OutboxWorker;
  seen: SeenRepo;
  client: PlaneClient;
}

export class PlaneUpdates {
  private readonly progress = new Map<number, { count: number; lastAt: number }>();
  /**
   * Event listeners (and progress comments) run one after another in event order, so a task's Plane
   * updates are queued in the order they happened.
   */
  private readonly serial = new KeyedSerial();
  private readonly client: PlaneClient;

  constructor(private readonly d: PlaneUpdatesDeps) {
    this.client = d.client;
    d.outbox.register(PLANE_CHANNEL, (payload: PlaneOp, ctx) => this.deliver(payload, ctx.signal));
    if (this.client.enabled) this.listen();
  }

  private get enabled(): boolean {
    return this.client.enabled;
  }

  /** Resolves when the updates of events seen so far are queued. */
  idle(): Promise<void> {
    return this.serial.idle();
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
}
