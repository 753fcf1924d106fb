// Message board page. Plain ES module, no build step. All message content goes into the DOM through
// textContent, never as markup. The live stream is read with fetch() (not EventSource) so that the
// API token travels in the Authorization header and never in a URL.
import { readStream } from './sse.js';
import { askToken as askTokenOnce, TOKEN_KEY } from './auth.js';

const MAX_ITEMS = 500;
const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  filters: { task_id: '', message_type: '', search: '' },
  items: new Map(), // id -> message, what the list shows
  lastEventId: null, // SSE cursor; null = fresh connection that needs a REST (re)load
  generation: 0, // bumps on filter change so stale loads and streams stop
  streamAbort: null,
  retryMs: 3000,
  failures: 0,
  selected: null,
};

// ---- API access, with the token form on 401 --------------------------------------------------

// Asks for the token (shared form logic in auth.js) and keeps it for the requests of this page.
async function askToken(rejected) {
  state.token = await askTokenOnce(rejected, () => setStatus('auth', 'token needed'));
}

function headers(extra = {}) {
  const h = { Accept: 'application/json', ...extra };
  if (state.token) h.Authorization = `Bearer ${state.token}`;
  return h;
}

async function api(path, signal) {
  for (;;) {
    const res = await fetch(path, { headers: headers(), signal, cache: 'no-store' });
    if (res.status === 401) {
      await askToken(Boolean(state.token));
      continue;
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new Error((body && (body.detail || body.error?.message)) || `HTTP ${res.status}`);
    return body;
  }
}

// ---- rendering --------------------------------------------------------------------------------

function setStatus(s, text) {
  const el = $('status');
  el.dataset.state = s;
  el.textContent = text;
}

function showError(text) {
  $('error').textContent = text || '';
  $('error').hidden = !text;
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmtTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

function messageNode(m, depth) {
  const li = el('li', `msg type-${['info', 'question', 'handoff', 'status', 'error'].includes(m.message_type) ? m.message_type : 'info'}`);
  if (depth) li.classList.add(`depth-${Math.min(depth, 6)}`);
  li.dataset.id = String(m.id);
  li.tabIndex = 0;
  const meta = el('div', 'meta');
  meta.append(el('span', 'badge', m.message_type));
  meta.append(el('span', 'who', m.sender));
  meta.append(el('span', 'to', m.recipient ? `→ ${m.recipient}` : '→ everyone'));
  if (m.task_id !== null) meta.append(el('span', 'task', `task #${m.task_id}`));
  if (m.workflow_id !== null) meta.append(el('span', 'wf', `workflow #${m.workflow_id}`));
  if (m.reply_to !== null) meta.append(el('span', 'reply', `reply to #${m.reply_to}`));
  const time = el('time', 'when', fmtTime(m.created_at));
  time.dateTime = m.created_at;
  meta.append(time, el('span', 'id', `#${m.id}`));
  li.append(meta, el('p', 'body', m.message));
  li.addEventListener('click', () => openThread(m.id));
  li.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') openThread(m.id);
  });
  return li;
}

// Inserts in id order (newest first), so replayed or late REST items land in the right place.
function addMessage(m, fresh) {
  if (state.items.has(m.id) || !matchesSearch(m)) return;
  state.items.set(m.id, m);
  const list = $('messages');
  const node = messageNode(m, 0);
  if (fresh) node.classList.add('fresh');
  let before = null;
  for (const child of list.children) {
    if (Number(child.dataset.id) < m.id) {
      before = child;
      break;
    }
  }
  list.insertBefore(node, before);
  while (list.children.length > MAX_ITEMS) {
    const last = list.lastElementChild;
    state.items.delete(Number(last.dataset.id));
    last.remove();
  }
  $('empty').hidden = true;
}

// The server filters task and type; search is applied here too so live messages respect it.
function matchesSearch(m) {
  const words = state.filters.search
    .toLowerCase()
    .split(/\s+/)
    .filter((w) => /[\p{L}\p{N}]/u.test(w));
  if (words.length === 0) return true;
  const hay = `${m.message} ${m.sender} ${m.recipient || ''}`.toLowerCase();
  return words.every((w) => hay.includes(w.replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '')));
}

function queryString(extra = {}) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...state.filters, ...extra })) if (v !== '' && v !== undefined) p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

async function loadList(gen) {
  try {
    const rows = await api(`/api/messages${queryString({ limit: 200 })}`);
    if (gen !== state.generation) return;
    for (const m of rows) addMessage(m, false);
    $('empty').hidden = state.items.size > 0;
    showError('');
  } catch (err) {
    if (gen === state.generation) showError(`Could not load messages: ${err.message}`);
  }
}

async function openThread(id) {
  try {
    const rows = await api(`/api/messages/${encodeURIComponent(id)}/thread`);
    const depth = new Map();
    const list = $('thread-list');
    list.replaceChildren();
    for (const m of rows) {
      const d = m.reply_to !== null && depth.has(m.reply_to) ? depth.get(m.reply_to) + 1 : 0;
      depth.set(m.id, d);
      list.append(messageNode(m, d));
    }
    $('thread-title').textContent = `Thread of #${id} (${rows.length})`;
    $('thread').hidden = false;
    document.querySelector('.layout').classList.add('with-thread');
    for (const n of document.querySelectorAll('.msg.selected')) n.classList.remove('selected');
    document.querySelector(`#messages [data-id="${Number(id)}"]`)?.classList.add('selected');
  } catch (err) {
    showError(`Could not load the thread: ${err.message}`);
  }
}

function closeThread() {
  $('thread').hidden = true;
  document.querySelector('.layout').classList.remove('with-thread');
}

// ---- live stream ------------------------------------------------------------------------------

async function connect(gen) {
  if (gen !== state.generation) return;
  const ctrl = new AbortController();
  state.streamAbort = ctrl;
  const fresh = state.lastEventId === null;
  const params = queryString({ search: '' });
  try {
    const extra = { Accept: 'text/event-stream' };
    if (!fresh) extra['Last-Event-ID'] = state.lastEventId;
    const res = await fetch(`/api/messages/stream/sse${params}`, { headers: headers(extra), signal: ctrl.signal, cache: 'no-store' });
    if (res.status === 401) {
      await askToken(Boolean(state.token));
      return connect(gen);
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
        if (gen !== state.generation) return;
        let payload;
        try {
          payload = JSON.parse(data);
        } catch {
          return;
        }
        if (event === 'connected') {
          state.failures = 0;
          setStatus('live', 'live');
          // Fresh connection: load the history now that nothing new can be missed.
          if (fresh) loadList(gen);
        } else if (event === 'message') {
          addMessage(payload, true);
        } else if (event === 'reset') {
          // Too far behind for a replay: reload everything.
          state.items.clear();
          $('messages').replaceChildren();
          loadList(gen);
        }
      },
    });
  } catch {
    if (ctrl.signal.aborted || gen !== state.generation) return;
  }
  if (gen !== state.generation) return;
  // The stream ended or failed: reconnect with Last-Event-ID, backing off while the server is away.
  state.failures++;
  setStatus('reconnecting', 'reconnecting…');
  const delay = Math.min(30_000, state.retryMs * 2 ** Math.min(state.failures - 1, 4)) * (0.8 + Math.random() * 0.4);
  setTimeout(() => connect(gen), state.failures === 1 ? Math.min(delay, 1000) : delay);
}

// ---- filters ----------------------------------------------------------------------------------

function applyFilters() {
  const task = $('f-task').value.trim();
  state.filters = {
    task_id: /^\d+$/.test(task) && Number(task) > 0 ? task : '',
    message_type: $('f-type').value,
    search: $('f-search').value.trim(),
  };
  const url = new URL(location.href);
  url.search = queryString();
  history.replaceState(null, '', url);
  restart();
}

function restart() {
  state.generation++;
  state.streamAbort?.abort();
  state.items.clear();
  state.lastEventId = null;
  state.failures = 0;
  $('messages').replaceChildren();
  $('empty').hidden = true;
  setStatus('connecting', 'connecting…');
  connect(state.generation);
}

function init() {
  const q = new URLSearchParams(location.search);
  $('f-task').value = q.get('task_id') || '';
  $('f-type').value = ['info', 'question', 'handoff', 'status', 'error'].includes(q.get('message_type')) ? q.get('message_type') : '';
  $('f-search').value = q.get('search') || '';
  $('filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    applyFilters();
  });
  $('f-type').addEventListener('change', applyFilters);
  $('f-clear').addEventListener('click', () => {
    $('f-task').value = '';
    $('f-type').value = '';
    $('f-search').value = '';
    applyFilters();
  });
  $('thread-close').addEventListener('click', closeThread);
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') closeThread();
  });
  applyFilters();
}

init();
