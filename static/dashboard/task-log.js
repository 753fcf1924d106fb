// The task page's log tail: reads /api/tasks/:id/logs on from the last line seen while the agent
// can still write, appends the rendered lines (capped) and follows the bottom when asked to.
import { RUNNING, state } from './state.js';
import { $, setText } from './dom.js';
import { showError } from './notices.js';
import { api } from './api.js';
import { renderLogLine } from './log-lines.js';

const MAX_LOG_ITEMS = 3000;
const LOG_POLL_MS = 700;

// How to re-read the task when no live stream announces the end of its run. The task page hands
// it in at start-up (main.js), so that the task page and this module need not import each other.
let refreshTask = () => {};
export function setTaskRefresh(fn) {
  refreshTask = fn;
}

export function stopLogPolling() {
  if (state.log?.timer) clearTimeout(state.log.timer);
  state.log = null;
}

export function scheduleLogPoll(delay) {
  const log = state.log;
  if (!log || log.gen !== state.gen) return;
  clearTimeout(log.timer);
  log.timer = setTimeout(() => pollLogs(log.gen), delay);
}

export async function pollLogs(gen) {
  const log = state.log;
  if (!log || log.gen !== gen || gen !== state.gen) return;
  if (log.busy) {
    log.again = true;
    return;
  }
  log.busy = true;
  clearTimeout(log.timer);
  try {
    for (;;) {
      const q = log.since === null ? 'limit=500' : `since=${log.since}&limit=1000`;
      const r = await api(`/api/tasks/${log.taskId}/logs?${q}`);
      if (state.log !== log || gen !== state.gen) return;
      appendLogs(r.logs);
      log.since = r.next_since ?? log.since ?? 0;
      if (r.logs.length < 1000) break;
    }
  } catch (err) {
    if (state.log === log) showError(`Could not load the log: ${err.message}`);
  } finally {
    log.busy = false;
  }
  if (state.log !== log) return;
  // Without the live stream nothing announces the end of the run: ask for the task as well.
  if (!state.live && state.task && RUNNING.has(state.task.status)) refreshTask(gen, log.taskId, true);
  if (log.again) {
    log.again = false;
    scheduleLogPoll(0);
    return;
  }
  // Poll while the agent can still write; status events trigger a last read when it stops.
  if (state.task && RUNNING.has(state.task.status)) scheduleLogPoll(LOG_POLL_MS);
}

function appendLogs(rows) {
  const list = $('t-logs');
  const frag = document.createDocumentFragment();
  for (const row of rows) {
    if (row.id <= state.log.lastId) continue;
    state.log.lastId = row.id;
    state.log.count++;
    for (const item of renderLogLine(row)) frag.append(item);
  }
  list.append(frag);
  while (list.children.length > MAX_LOG_ITEMS) list.firstElementChild.remove();
  setText($('t-log-count'), state.log.count ? `(${state.log.count} lines)` : '');
  $('t-logs-empty').hidden = list.children.length > 0;
  if ($('t-follow').checked && rows.length) list.scrollTop = list.scrollHeight;
}
