// Live updates: one Server-Sent Events stream (/api/events/stream, read with fetch() so the token
// goes in the Authorization header, never in a URL) that updates whichever view is shown, and
// reconnects with Last-Event-ID and backoff when it drops.
import { readStream } from '../sse.js';
import { debounce, state } from './state.js';
import { rememberRepo } from './widgets.js';
import { setStatus } from './notices.js';
import { askToken, headers } from './api.js';
import { loadView } from './router.js';
import { refreshListTask, upsertTask } from './task-list.js';
import { loadWorkflows } from './workflow-list.js';
import { refreshTask, renderTask } from './task-page.js';
import { scheduleLogPoll } from './task-log.js';
import { addTaskMessage } from './task-messages.js';
import { refreshWorkflow } from './workflow-page.js';

function onEvent(kind, payload) {
  const r = state.route;
  if (kind === 'task_status') {
    rememberRepo(payload.repo);
    state.taskCache.delete(payload.id);
    if (r.view === 'tasks') {
      upsertTask(payload);
      refreshListTask(payload.id);
    } else if (r.view === 'task' && payload.id === r.id) {
      const changed = !state.task || state.task.status !== payload.status;
      if (state.task) renderTask({ ...state.task, ...payload });
      refreshTask(state.gen, r.id, changed);
      scheduleLogPoll(0);
    } else if (r.view === 'workflow' && payload.workflow_id === r.id) {
      refreshWorkflow();
    } else if (r.view === 'workflows' && payload.workflow_id) {
      debounce('workflows', () => loadWorkflows(state.gen), 300);
    }
  } else if (kind === 'workflow_status') {
    if (r.view === 'workflows') debounce('workflows', () => loadWorkflows(state.gen), 200);
    else if (r.view === 'workflow' && payload.id === r.id) refreshWorkflow();
  } else if (kind === 'message') {
    if (r.view === 'task' && payload.task_id === r.id) addTaskMessage(payload);
  }
}

export async function connect() {
  const fresh = state.lastEventId === null;
  const ctrl = new AbortController();
  try {
    const extra = { Accept: 'text/event-stream' };
    if (!fresh) extra['Last-Event-ID'] = state.lastEventId;
    const res = await fetch('/api/events/stream?types=task_status,workflow_status,message', {
      headers: headers(extra),
      signal: ctrl.signal,
      cache: 'no-store',
    });
    if (res.status === 401) {
      await askToken(Boolean(state.token));
      return connect();
    }
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
    await readStream(res.body, {
      onId: (id) => {
        state.lastEventId = id;
      },
      onRetry: (ms) => {
        state.retryMs = ms;
      },
      onFrame: (event, data) => {
        let payload;
        try {
          payload = JSON.parse(data);
        } catch {
          return;
        }
        if (event === 'connected') {
          state.failures = 0;
          state.live = true;
          setStatus('live', 'live');
          // A fresh stream may have missed changes since the page loaded its data: load again.
          if (fresh) loadView();
        } else if (event === 'reset') {
          loadView();
        } else if (payload && typeof payload === 'object') {
          onEvent(event, payload);
        }
      },
    });
  } catch {
    // network error or the server went away: reconnect below
  }
  state.live = false;
  // The stream ended or failed: reconnect with Last-Event-ID, backing off while the server is away.
  state.failures++;
  setStatus('reconnecting', 'reconnecting…');
  const delay = Math.min(30_000, state.retryMs * 2 ** Math.min(state.failures - 1, 4)) * (0.8 + Math.random() * 0.4);
  setTimeout(connect, state.failures === 1 ? Math.min(delay, 1000) : delay);
}
