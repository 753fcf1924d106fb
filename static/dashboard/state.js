// The dashboard's shared state: one object that every view reads and writes, the task status sets
// the views agree on, and the debounce that route changes cancel. Kept apart so that no view has
// to import another one just to reach the state.
import { TOKEN_KEY } from '../auth.js';

export const ACTIVE = new Set(['queued', 'in_progress', 'waiting_for_input']);
export const RUNNING = new Set(['queued', 'in_progress']);
export const STATUSES = ['queued', 'in_progress', 'waiting_for_input', 'in_review', 'done', 'failed', 'cancelled'];

export const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  route: { view: 'tasks', id: null },
  gen: 0, // bumps on every navigation so stale loads drop their results
  // list pages
  tasks: new Map(),
  filters: { status: '', repo: '' },
  offset: 0,
  workflows: new Map(),
  repos: new Set(),
  // task page
  task: null,
  clarifyKey: '',
  log: null,
  messageIds: new Set(),
  // workflow page
  workflow: null,
  taskCache: new Map(),
  // live stream
  live: false,
  lastEventId: null,
  retryMs: 3000,
  failures: 0,
  timers: new Map(), // debounce key -> timeout
};

/** Runs `fn` once `wait` ms after the last call with the same key; a navigation clears them all. */
export function debounce(key, fn, wait = 150) {
  clearTimeout(state.timers.get(key));
  state.timers.set(
    key,
    setTimeout(() => {
      state.timers.delete(key);
      fn();
    }, wait),
  );
}
