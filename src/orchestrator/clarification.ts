// The clarification_context JSON kept on a task (upstream-compatible shape plus a few fields). Pure.

export interface ClarificationRound {
  question: string;
  asked_at: string;
  response?: string;
  answered_at?: string;
  answered_by?: string;
}

export interface ClarificationContext {
  history: ClarificationRound[];
  pending_question?: string;
  asked_at?: string;
  options?: string[];
  context?: string;
  reminded_at?: string;
  /** Outbox key of the Telegram message that carried the question (replies to it answer). */
  telegram_key?: string;
}

export function parseClarification(raw: string): ClarificationContext {
  if (!raw) return { history: [] };
  try {
    const v = JSON.parse(raw) as Partial<ClarificationContext>;
    return { ...v, history: Array.isArray(v.history) ? v.history : [] };
  } catch {
    return { history: [] };
  }
}

/** Records the answer to the pending question. */
export function answerClarification(ctx: ClarificationContext, response: string, by: string): ClarificationContext {
  const now = new Date().toISOString();
  const history = [...ctx.history];
  const last = history[history.length - 1];
  if (last && last.response === undefined) history[history.length - 1] = { ...last, response, answered_at: now, answered_by: by };
  else history.push({ question: ctx.pending_question ?? '', asked_at: ctx.asked_at ?? now, response, answered_at: now, answered_by: by });
  return { history };
}

/** The prompt section that carries every question and answer so far. */
export function clarificationSection(ctx: ClarificationContext): string {
  const answered = ctx.history.filter((h) => h.response !== undefined);
  if (!answered.length) return '';
  const lines = answered.map((h, i) => `Q${i + 1}: ${h.question}\nAnswer: ${h.response}`);
  return `## Answers to your questions\n\n${lines.join('\n\n')}`;
}
