// Tells people what happens: Telegram notices and board messages on task and workflow events,
// clarification questions (with replies from Telegram read back as answers).
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { KvRepo } from '../db/repositories/kv.js';
import type { SeenRepo } from '../db/repositories/seen.js';
import type { DomainEvents, EventBus } from '../events/bus.js';
import type { TaskService } from '../tasks/service.js';
import type { BoardService } from '../board/service.js';
import type { ClarificationService } from '../orchestrator/clarify.js';
import { escapeHtml as esc, loadTelegramSdk, type TelegramNotifier } from './telegram.js';
import { parseClarification } from '../orchestrator/clarification.js';
import { coerceError } from '../errors.js';
import { KeyedSerial } from '../async/serial.js';
import type { TriggerGate } from '../auth/triggers.js';

const title = (t: TaskRow) => `<b>${esc(t.title)}</b> (task #${t.id})`;

export class Notifications {
  private abort: AbortController | null = null;
  private polling: Promise<void> | null = null;

  constructor(
    private readonly d: {
      config: Config;
      logger: Logger;
      bus: EventBus;
      tasks: TaskService;
      board: BoardService;
      telegram: TelegramNotifier;
      clarify: ClarificationService;
      kv: KvRepo;
      seen: SeenRepo;
      gate: TriggerGate;
    },
  ) {
    this.listen();
  }

  /**
   * Every listener's work runs through one queue, so notices are queued in the order their events
   * happened (the outbox then keeps that order per chat), as when the database calls were synchronous.
   */
  private readonly serial = new KeyedSerial();

  private on<K extends keyof DomainEvents & string>(event: K, fn: (payload: DomainEvents[K]) => Promise<unknown>): void {
    // The bus logs a listener's failure (its promise is handed back to it).
    this.d.bus.on(event, (payload) =>
      this.serial.run('events', async () => {
        await fn(payload);
      }),
    );
  }

  private listen(): void {
    const { telegram: tg, board } = this.d;
    this.on('agent.started', async ({ task, branch }) => {
      await board.postSystem({
        task_id: task.id,
        workflow_id: task.workflow_id,
        message_type: 'status',
        message: `Task started (${task.parent_task_id ? 'revision' : 'fresh'}): ${task.title} on ${branch}`,
      });
      if (!task.workflow_id)
        await tg.notify(`🔧 Started ${title(task)}\nBranch <code>${esc(branch)}</code>`, {
          dedupeKey: `tg:started:${task.id}:${task.attempts}`,
        });
    });
    this.on('task.status', async ({ task }) => {
      const standalone = !task.workflow_id;
      switch (task.status) {
        case 'in_review':
          await board.postSystem({
            task_id: task.id,
            message_type: 'status',
            message: `Agent completed: ${task.title}${task.pr_url ? ` (PR: ${task.pr_url})` : ''}`,
          });
          await tg.notify(
            `✅ ${title(task)}\n${task.pr_url ? `PR: ${esc(task.pr_url)}` : 'Branch pushed (no pull request: GITHUB_TOKEN is not set)'}`,
            { dedupeKey: `tg:review:${task.id}:${task.updated_at}` },
          );
          return;
        case 'done':
          if (standalone) {
            await board.postSystem({ task_id: task.id, message_type: 'status', message: `Task done: ${task.title}` });
            await tg.notify(`✅ Done: ${title(task)}\n${esc(task.result_summary.slice(0, 300))}`, { dedupeKey: `tg:done:${task.id}` });
          }
          return;
        case 'failed':
          if (standalone) {
            await board.postSystem({
              task_id: task.id,
              message_type: 'error',
              message: `Task failed: ${task.title}: ${task.error.slice(0, 2000)}`,
            });
            await tg.notify(`❌ Failed: ${title(task)}\n<pre>${esc(task.error.slice(0, 500))}</pre>`, {
              dedupeKey: `tg:failed:${task.id}`,
            });
          }
          return;
        case 'cancelled':
          if (standalone) await tg.notify(`🛑 Cancelled: ${title(task)}`, { dedupeKey: `tg:cancelled:${task.id}` });
          return;
        case 'waiting_for_input':
          await this.ask(task);
          return;
        default:
          return;
      }
    });
    this.on('task.preview', async ({ task, url }) => {
      await tg.notify(`🚀 Preview deployed for ${title(task)}\n${esc(url)}`, { dedupeKey: `tg:preview:${task.id}:${url}` });
      await board.postSystem({
        task_id: task.id,
        workflow_id: task.workflow_id,
        message_type: 'status',
        message: `Preview deployed: ${url}`,
      });
    });
    this.on('task.pr_attention', async ({ task, reason }) => {
      // The board error message is forwarded when errors are in forward_types; otherwise tell Telegram here.
      const mb = this.d.config.message_board;
      if (!(mb.enabled && mb.telegram_forward && mb.forward_types.includes('error'))) await tg.notify(`⚠️ ${title(task)}: ${esc(reason)}`);
    });
    this.on('task.answered', ({ task, by }) =>
      tg.notify(`▶️ Answer received from ${esc(by)}; resuming ${title(task)}`, { dedupeKey: `tg:answered:${task.id}:${task.updated_at}` }),
    );
    this.on('task.question_reminder', async ({ task, question }) => {
      const ctx = parseClarification(task.clarification_context);
      const replyTo = ctx.telegram_key ? await tg.sentMessageId(ctx.telegram_key) : undefined;
      await tg.notify(`⏰ Still waiting for an answer on ${title(task)}: ${esc(question)}`, {
        replyTo,
        dedupeKey: `tg:reminder:${task.id}:${ctx.asked_at}`,
      });
    });
    this.on('queue.paused', ({ until, reason, by }) =>
      tg.notify(`⏸ Queue paused by ${esc(by)}: ${esc(reason)}${until ? `\nWork resumes at ${esc(until)}` : ''}`, {
        dedupeKey: `tg:paused:${until ?? 'manual'}:${reason}`,
      }),
    );
    this.on('queue.resumed', ({ by }) => tg.notify(`▶️ Queue resumed (${esc(by)})`));
    this.on('queue.budget_spent', ({ spent, budget, resumesAt }) =>
      tg.notify(`💸 Daily budget spent ($${spent.toFixed(2)} of $${budget.toFixed(2)}); no new work starts until ${esc(resumesAt)}`, {
        dedupeKey: `tg:budget:${resumesAt}`,
      }),
    );
    this.on('workflow.started', ({ workflow: w }) =>
      tg.notify(`🚀 Workflow <b>${esc(w.title)}</b> (${esc(w.name)} #${w.id}) started`, { dedupeKey: `tg:wf:${w.id}:start` }),
    );
    this.on('workflow.iteration', ({ workflow: w, iteration, max }) =>
      tg.notify(`🔄 Workflow <b>${esc(w.title)}</b>: iteration ${iteration}/${max}`, { dedupeKey: `tg:wf:${w.id}:it:${iteration}` }),
    );
    this.on('workflow.completed', ({ workflow: w }) =>
      tg.notify(`✅ Workflow <b>${esc(w.title)}</b> finished (${esc(w.result)})${w.pr_url ? `\nPR: ${esc(w.pr_url)}` : ''}`, {
        dedupeKey: `tg:wf:${w.id}:done`,
      }),
    );
    this.on('workflow.failed', ({ workflow: w }) =>
      tg.notify(`❌ Workflow <b>${esc(w.title)}</b> failed\n<pre>${esc(w.error.slice(0, 500))}</pre>`, {
        dedupeKey: `tg:wf:${w.id}:failed`,
      }),
    );
    this.on('workflow.cancelled', ({ workflow: w }) =>
      tg.notify(`🛑 Workflow <b>${esc(w.title)}</b> cancelled`, { dedupeKey: `tg:wf:${w.id}:cancelled` }),
    );
  }

  // The question goes to the board and to Telegram; the Telegram message is remembered so a reply to it answers the task.
  private async ask(task: TaskRow): Promise<void> {
    const ctx = parseClarification(task.clarification_context);
    const question = ctx.pending_question ?? '';
    const round = ctx.history.length;
    const options = ctx.options?.length ? `\nOptions: ${ctx.options.join(' / ')}` : '';
    const msg = await this.d.board.postSystem({
      sender: `task-${task.id}:${task.agent_type}`,
      task_id: task.id,
      workflow_id: task.workflow_id,
      message_type: 'question',
      message: `${question}${options}`,
    });
    const mb = this.d.config.message_board;
    const forwarded = msg !== null && mb.telegram_forward && mb.forward_types.includes('question');
    let key = forwarded ? `board-message:${msg.id}` : `tg:question:${task.id}:${round}`;
    if (!forwarded) {
      const sent = await this.d.telegram.notify(
        `❓ ${title(task)} needs an answer:\n${esc(question)}${esc(options)}\n\n<i>Reply to this message to answer.</i>`,
        { dedupeKey: key },
      );
      if (!sent) key = '';
    }
    if (key) await this.rememberQuestionKey(task, key);
  }

  /**
   * Stores the Telegram key on the task's question. The task was read when the event fired and the
   * awaits since let other writers in: an answer may have come already (the task is queued, its
   * context holds the answer). So the context is read again, and written only while the task still
   * waits on the same question; the UPDATE itself is guarded by the status (repo.transition to the
   * same status: no status change, no event).
   */
  private async rememberQuestionKey(task: TaskRow, key: string): Promise<void> {
    const fresh = await this.d.tasks.get(task.id);
    if (!fresh || fresh.status !== 'waiting_for_input') return;
    const ctx = parseClarification(fresh.clarification_context);
    if (ctx.asked_at !== parseClarification(task.clarification_context).asked_at) return;
    await this.d.tasks.repo.transition(task.id, ['waiting_for_input'], 'waiting_for_input', {
      clarification_context: JSON.stringify({ ...ctx, telegram_key: key }),
    });
  }

  /** Reads replies to question messages from Telegram (long polling) when a bot token is set. */
  startReplies(): void {
    const token = this.d.config.secrets.telegramBotToken;
    if (!token || !this.d.config.telegram.poll_replies || this.polling) return;
    const abort = new AbortController();
    this.abort = abort;
    this.polling = (async () => {
      try {
        const { Api, longPoll } = await loadTelegramSdk();
        const api = new Api(token, { apiRoot: this.d.config.telegram.api_root, maxRetries: 0 });
        const offset = await this.d.kv.get<number>('telegram:offset');
        for await (const u of longPoll(
          api,
          {
            timeout: 25,
            allowedUpdates: ['message'],
            ...(offset ? { offset } : {}),
            onError: (err) => this.d.logger.warn({ err: coerceError(err) }, 'telegram polling error'),
          },
          abort.signal,
        )) {
          await this.d.kv.set('telegram:offset', u.update_id + 1);
          // The mark is the guard (INSERT … ON CONFLICT DO NOTHING): an update is handled once.
          if (!(await this.d.seen.mark(`telegram:update:${u.update_id}`))) continue;
          const m = 'message' in u ? u.message : undefined;
          const replyTo = m?.reply_to_message?.message_id;
          if (!m?.text || !replyTo) continue;
          await this.onReply(replyTo, m.text, m.from?.username ? `@${m.from.username}` : String(m.from?.id ?? 'unknown'), m.from?.id);
        }
      } catch (err) {
        if (!abort.signal.aborted) this.d.logger.error({ err: coerceError(err) }, 'telegram polling stopped');
      }
    })();
  }

  private async onReply(replyTo: number, text: string, who: string, userId?: number): Promise<void> {
    if (!this.d.gate.allows('telegram', [userId, who], 'a Telegram reply')) return;
    for (const task of await this.d.tasks.repo.byStatus('waiting_for_input')) {
      const key = parseClarification(task.clarification_context).telegram_key;
      if (!key || (await this.d.telegram.sentMessageId(key)) !== replyTo) continue;
      // The answer is a guarded transition (waiting_for_input → queued): of two answers, the first wins.
      try {
        await this.d.clarify.answer(task.id, text, `telegram:${who}`);
      } catch (err) {
        this.d.logger.warn({ err: coerceError(err), taskId: task.id }, 'telegram answer not applied');
      }
      return;
    }
  }

  /** Stops reading replies and lets the notices of events already seen be queued. */
  async stop(): Promise<void> {
    this.abort?.abort();
    await this.polling;
    this.polling = null;
    await this.serial.idle();
  }
}
