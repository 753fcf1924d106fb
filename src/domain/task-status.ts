// Task statuses and the transitions between them. Pure: no I/O.

export const TASK_STATUSES = ['queued', 'in_progress', 'waiting_for_input', 'in_review', 'done', 'failed', 'cancelled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

const ALLOWED: Record<TaskStatus, readonly TaskStatus[]> = {
  // queued → done: a queued revision of a PR that got merged meanwhile is not needed any more
  queued: ['in_progress', 'cancelled', 'failed', 'done'],
  // back to queued: recovery after a crash, a usage-limit pause, or a shutdown that hands work to the next boot
  in_progress: ['waiting_for_input', 'in_review', 'done', 'failed', 'cancelled', 'queued'],
  waiting_for_input: ['queued', 'cancelled', 'failed'],
  // an open PR can be revised (queued again), merged (done) or closed (cancelled)
  in_review: ['queued', 'done', 'cancelled', 'failed'],
  done: [],
  failed: [],
  cancelled: [],
};

export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return ALLOWED[from].includes(to);
}

export const TERMINAL: readonly TaskStatus[] = ['done', 'failed', 'cancelled'];
export const isTerminal = (s: TaskStatus) => TERMINAL.includes(s);
/** Statuses in which the agent's work is over (for cancel: 409). */
export const isFinished = (s: TaskStatus) => isTerminal(s) || s === 'in_review';
