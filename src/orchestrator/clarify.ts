// Answers to agents' questions, from any channel, plus reminders and the unanswered timeout.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { EventBus } from '../events/bus.js';
import type { TaskService } from '../tasks/service.js';
import type { QueueSignals } from '../queue/running.js';
import { DomainError, notFound } from '../errors.js';
import { answerClarification, parseClarification } from './clarification.js';
import { nowIso } from '../db/time.js';

export class ClarificationService {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly d: {
      config: Config;
      logger: Logger;
      tasks: TaskService;
      queue: QueueSignals;
      bus: EventBus;
      /** Removes a task's worktree when it fails for want of an answer. */
      cleanup: (task: TaskRow) => Promise<void>;
    },
  ) {}

  /** Records the answer and queues the task to resume. 409 when the task is not waiting. */
  async answer(taskId: number, response: string, by: string): Promise<TaskRow> {
    const text = response.trim();
    if (!text) throw new DomainError('invalid', 'invalid_input', 'response: must not be empty', 'response');
    const task = await this.d.tasks.get(taskId);
    if (!task) throw notFound('Task');
    if (task.status !== 'waiting_for_input')
      throw new DomainError('conflict', 'conflict', `Task is ${task.status}, must be waiting_for_input`);
    const ctx = answerClarification(parseClarification(task.clarification_context), text.slice(0, 20_000), by);
    const updated = await this.d.tasks.transition(taskId, ['waiting_for_input'], 'queued', {
      clarification_context: JSON.stringify(ctx),
      run_requested_at: nowIso(),
      not_before: null,
    });
    // Lost a race with another answer channel: the first answer wins.
    if (!updated) throw new DomainError('conflict', 'conflict', 'Task was answered or changed meanwhile');
    this.d.bus.emit('task.answered', { task: updated, by, response: text });
    this.d.queue.notify();
    return updated;
  }

  /** Sends one reminder after reminder_minutes; fails the task after timeout_minutes. */
  async checkTimeouts(now = Date.now()): Promise<void> {
    const { reminder_minutes: remind, timeout_minutes: timeout } = this.d.config.clarification;
    for (const task of await this.d.tasks.repo.byStatus('waiting_for_input')) {
      const ctx = parseClarification(task.clarification_context);
      const asked = Date.parse(ctx.asked_at ?? task.updated_at);
      if (!Number.isFinite(asked)) continue;
      const waited = (now - asked) / 60_000;
      if (waited >= timeout) {
        const failed = await this.d.tasks.transition(task.id, ['waiting_for_input'], 'failed', {
          error: `No answer to the agent's question within ${timeout} minutes: ${ctx.pending_question ?? ''}`.trim(),
          completed_at: nowIso(),
          run_requested_at: null,
        });
        if (failed) await this.d.cleanup(failed).catch(() => undefined);
      } else if (waited >= remind && !ctx.reminded_at) {
        await this.d.tasks.update(task.id, { clarification_context: JSON.stringify({ ...ctx, reminded_at: nowIso() }) });
        this.d.bus.emit('task.question_reminder', { task, question: ctx.pending_question ?? '' });
      }
    }
  }

  start(intervalMs = 60_000): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.checkTimeouts().catch((err) => this.d.logger.error({ err }, 'clarification timeout check failed'));
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
