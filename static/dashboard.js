// Factory dashboard: task list, task page, workflow pages and the create form. Plain ES module, no
// build step. Everything that comes from the API (agent text above all) reaches the DOM through
// textContent or attributes set from JS, never as markup. The live stream is read with fetch()
// rather than EventSource, so the API token travels in the Authorization header and never in a URL.
import { readStream } from './sse.js';
import { askToken as askTokenOnce, TOKEN_KEY } from './auth.js';

const REPO_KEY = 'factory_last_repo';
const PAGE_SIZE = 100;
const MAX_LOG_ITEMS = 3000;
const LOG_POLL_MS = 700;
const ACTIVE = new Set(['queued', 'in_progress', 'waiting_for_input']);
const RUNNING = new Set(['queued', 'in_progress']);
const STATUSES = ['queued', 'in_progress', 'waiting_for_input', 'in_review', 'done', 'failed', 'cancelled'];
const $ = (id) => document.getElementById(id);

const state = {
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

// ---- small helpers --------------------------------------------------------------------------

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

/** Sets text only when it changed, so live updates do not churn the DOM. */
function setText(node, text) {
  const t = text === undefined || text === null ? '' : String(text);
  if (node.textContent !== t) node.textContent = t;
}

/** Only http(s) URLs become links; anything else (javascript:, data:) is shown as text. */
function safeUrl(u) {
  if (typeof u !== 'string' || !u) return null;
  try {
    const url = new URL(u, location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function link(href, text, className, external) {
  const a = el('a', className, text);
  a.href = href;
  if (external) {
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
  } else {
    a.dataset.nav = '';
  }
  return a;
}

function truncate(s, n) {
  const t = String(s ?? '');
  return t.length > n ? `${t.slice(0, n)}…` : t;
}

function oneLine(s, n) {
  return truncate(String(s ?? '').replace(/\s*\n\s*/g, ' ⏎ '), n);
}

function ms(iso) {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? null : t;
}

function fmtSpan(msec) {
  if (msec === null || msec < 0) return '—';
  const s = Math.floor(msec / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function fmtAge(iso) {
  const t = ms(iso);
  if (t === null) return '—';
  const s = Math.max(0, Math.floor((Date.now() - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400 * 2) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

function fmtTime(iso) {
  const t = ms(iso);
  return t === null ? '—' : new Date(t).toLocaleString();
}

function fmtClock(iso) {
  const t = ms(iso);
  return t === null ? '' : new Date(t).toLocaleTimeString([], { hour12: false });
}

function fmtCost(c) {
  if (c === null || c === undefined || Number.isNaN(Number(c))) return '—';
  const n = Number(c);
  if (n === 0) return '$0';
  return `$${n < 1 ? n.toFixed(4).replace(/0+$/, '').replace(/\.$/, '') : n.toFixed(2)}`;
}

/** Time the agent has worked: start to completion, or to now while it is still active. */
function duration(t) {
  const start = ms(t.started_at);
  if (start === null) return null;
  const end = ms(t.completed_at);
  if (end !== null) return end - start;
  if (ACTIVE.has(t.status)) return Date.now() - start;
  // In review (or ended without a completion time): the agent stopped at the last update.
  const last = ms(t.updated_at);
  return last !== null && last >= start ? last - start : null;
}

function statusPill(status, className = 'pill') {
  const known = STATUSES.includes(status) || ['pending', 'running', 'completed', 'skipped'].includes(status);
  const p = el('span', `${className} st-${known ? status : 'other'}`, status || '—');
  return p;
}

function updatePill(node, status) {
  const known = STATUSES.includes(status) || ['pending', 'running', 'completed', 'skipped'].includes(status);
  const cls = `pill st-${known ? status : 'other'}`;
  if (node.className !== cls) node.className = cls;
  setText(node, status || '—');
}

function debounce(key, fn, wait = 150) {
  clearTimeout(state.timers.get(key));
  state.timers.set(
    key,
    setTimeout(() => {
      state.timers.delete(key);
      fn();
    }, wait),
  );
}

function showError(text) {
  setText($('error'), text || '');
  $('error').hidden = !text;
}

let noticeTimer = null;
/** A short-lived note; `parts` are strings and nodes (links), appended as they are. */
function showNotice(...parts) {
  const n = $('notice');
  n.replaceChildren(...parts.map((p) => (typeof p === 'string' ? document.createTextNode(p) : p)));
  n.hidden = parts.length === 0;
  clearTimeout(noticeTimer);
  if (parts.length)
    noticeTimer = setTimeout(() => {
      n.hidden = true;
    }, 15_000);
}

function rememberRepo(repo) {
  if (!repo || state.repos.has(repo)) return;
  state.repos.add(repo);
  const opt = document.createElement('option');
  opt.value = repo;
  $('repo-list').append(opt);
}

// ---- API access, with the token form on 401 -------------------------------------------------

// Asks for the token (shared form logic in auth.js) and keeps it for the requests of this page.
async function askToken(rejected) {
  state.token = await askTokenOnce(rejected, () => setStatus('auth', 'token needed'));
  if (!state.live) setStatus('connecting', 'connecting…');
}

function headers(extra = {}) {
  const h = { Accept: 'application/json', ...extra };
  if (state.token) h.Authorization = `Bearer ${state.token}`;
  return h;
}

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function api(path, opts = {}) {
  for (;;) {
    const init = {
      method: opts.method || 'GET',
      cache: 'no-store',
      headers: headers(opts.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
    };
    if (opts.body !== undefined) init.body = JSON.stringify(opts.body);
    const res = await fetch(path, init);
    if (res.status === 401) {
      await askToken(Boolean(state.token));
      continue;
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError((body && (body.detail || body.error?.message)) || `HTTP ${res.status}`, res.status);
    return body;
  }
}

// ---- routing --------------------------------------------------------------------------------

function parseRoute(pathname) {
  const p = pathname.replace(/\/+$/, '') || '/';
  let m;
  if (p === '/' || p === '/tasks') return { view: 'tasks', id: null };
  if (p === '/new') return { view: 'tasks', id: null, openNew: true };
  if ((m = /^\/tasks\/(\d{1,15})$/.exec(p))) return { view: 'task', id: Number(m[1]) };
  if (p === '/workflows') return { view: 'workflows', id: null };
  if ((m = /^\/workflows\/(\d{1,15})$/.exec(p))) return { view: 'workflow', id: Number(m[1]) };
  return { view: 'missing', id: null };
}

function navigate(href) {
  history.pushState(null, '', href);
  route();
  window.scrollTo(0, 0);
}

function route() {
  const r = parseRoute(location.pathname);
  state.gen++;
  state.route = r;
  stopLogPolling();
  for (const [key, t] of state.timers) {
    clearTimeout(t);
    state.timers.delete(key);
  }
  for (const page of document.querySelectorAll('.page')) page.hidden = page.id !== `v-${r.view}`;
  for (const a of document.querySelectorAll('.nav a[data-tab]')) {
    const on =
      a.dataset.tab === r.view ||
      (a.dataset.tab === 'tasks' && r.view === 'task') ||
      (a.dataset.tab === 'workflows' && r.view === 'workflow');
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const listView = r.view === 'tasks' || r.view === 'workflows';
  if (!listView) $('new-panel').hidden = true;
  else if (r.openNew || !$('new-panel').hidden) openNewPanel();
  showError('');
  loadView();
}

function loadView() {
  const gen = state.gen;
  const r = state.route;
  if (r.view === 'tasks') {
    readFiltersFromUrl();
    document.title = 'Factory · Tasks';
    loadTasks(gen, false);
  } else if (r.view === 'workflows') {
    document.title = 'Factory · Workflows';
    loadWorkflows(gen);
  } else if (r.view === 'task') {
    document.title = `Factory · Task #${r.id}`;
    loadTaskPage(gen, r.id);
  } else if (r.view === 'workflow') {
    document.title = `Factory · Workflow #${r.id}`;
    loadWorkflowPage(gen, r.id);
  } else {
    document.title = 'Factory · Not found';
    setText($('missing-text'), `There is no page at ${location.pathname}.`);
  }
}

function showMissing(what) {
  for (const page of document.querySelectorAll('.page')) page.hidden = page.id !== 'v-missing';
  setText($('missing-text'), `${what} does not exist (or was removed).`);
}

// ---- task list ------------------------------------------------------------------------------

function readFiltersFromUrl() {
  const q = new URLSearchParams(location.search);
  const status = q.get('status') || '';
  state.filters = { status: STATUSES.includes(status) ? status : '', repo: (q.get('repo') || '').trim().slice(0, 200) };
  $('f-status').value = state.filters.status;
  $('f-repo').value = state.filters.repo;
}

function applyFilters() {
  const p = new URLSearchParams();
  const status = $('f-status').value;
  const repo = $('f-repo').value.trim();
  if (status) p.set('status', status);
  if (repo) p.set('repo', repo);
  const qs = p.toString();
  history.replaceState(null, '', `${location.pathname}${qs ? `?${qs}` : ''}`);
  state.gen++;
  state.tasks.clear();
  $('task-rows').replaceChildren();
  readFiltersFromUrl();
  loadTasks(state.gen, false);
}

function taskMatches(t) {
  return (!state.filters.status || t.status === state.filters.status) && (!state.filters.repo || t.repo === state.filters.repo);
}

async function loadTasks(gen, append) {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(append ? state.offset : 0) });
  if (state.filters.status) q.set('status', state.filters.status);
  if (state.filters.repo) q.set('repo', state.filters.repo);
  try {
    const rows = await api(`/api/tasks?${q}`);
    if (gen !== state.gen) return;
    if (!append) {
      const ids = new Set(rows.map((t) => t.id));
      for (const id of [...state.tasks.keys()]) if (!ids.has(id)) removeTaskRow(id);
      state.offset = 0;
    }
    state.offset += rows.length;
    for (const t of rows) upsertTask(t);
    $('tasks-more').hidden = rows.length < PAGE_SIZE;
    $('tasks-empty').hidden = state.tasks.size > 0;
    showError('');
  } catch (err) {
    if (gen === state.gen) showError(`Could not load tasks: ${err.message}`);
  }
}

function removeTaskRow(id) {
  state.tasks.delete(id);
  document.querySelector(`#task-rows tr[data-id="${Number(id)}"]`)?.remove();
}

/** Adds or updates a task in the list; older data (by updated_at) never overwrites newer. */
function upsertTask(t) {
  rememberRepo(t.repo);
  const cur = state.tasks.get(t.id);
  if (cur && cur.updated_at && t.updated_at && t.updated_at < cur.updated_at) return;
  const merged = cur ? { ...cur, ...t } : { ...t };
  if (!taskMatches(merged)) {
    removeTaskRow(t.id);
    $('tasks-empty').hidden = state.tasks.size > 0;
    return;
  }
  state.tasks.set(t.id, merged);
  const body = $('task-rows');
  let tr = body.querySelector(`tr[data-id="${Number(t.id)}"]`);
  if (!tr) {
    tr = buildTaskRow(merged);
    let before = null;
    for (const row of body.children) {
      if (Number(row.dataset.id) < t.id) {
        before = row;
        break;
      }
    }
    body.insertBefore(tr, before);
  }
  fillTaskRow(tr, merged);
  $('tasks-empty').hidden = true;
}

function cell(tr, cls, label) {
  const td = el('td', cls);
  td.dataset.label = label;
  tr.append(td);
  return td;
}

function buildTaskRow(t) {
  const tr = el('tr');
  tr.dataset.id = String(t.id);
  const main = cell(tr, 'c-task', 'Task');
  const a = link(`/tasks/${Number(t.id)}`, '', 'task-link');
  a.append(el('span', 'id', `#${t.id}`), el('span', 'title'));
  main.append(a, el('span', 'sub'));
  cell(tr, 'c-status', 'Status').append(el('span', 'pill'));
  cell(tr, 'c-repo', 'Repository');
  cell(tr, 'c-agent', 'Agent');
  cell(tr, 'c-age', 'Age').append(el('time'));
  cell(tr, 'c-duration', 'Duration');
  cell(tr, 'c-cost', 'Cost');
  cell(tr, 'c-links', 'Links');
  return tr;
}

function fillTaskRow(tr, t) {
  setText(tr.querySelector('.c-task .title'), t.title);
  const sub = tr.querySelector('.c-task .sub');
  const subKey = `${t.workflow_id ?? ''}|${t.error ? 'e' : ''}|${t.error ?? ''}`;
  if (sub.dataset.key !== subKey) {
    sub.dataset.key = subKey;
    sub.replaceChildren();
    if (t.workflow_id) sub.append(link(`/workflows/${Number(t.workflow_id)}`, `workflow #${t.workflow_id}`, 'wf-link'));
    if (t.error && (t.status === 'failed' || t.status === 'cancelled')) sub.append(el('span', 'err-text', oneLine(t.error, 140)));
  }
  updatePill(tr.querySelector('.c-status .pill'), t.status);
  tr.dataset.status = t.status;
  setText(tr.querySelector('.c-repo'), t.repo);
  setText(tr.querySelector('.c-agent'), t.agent_type);
  const time = tr.querySelector('.c-age time');
  if (t.created_at) {
    time.dateTime = t.created_at;
    time.title = fmtTime(t.created_at);
  }
  setText(time, fmtAge(t.created_at));
  setText(tr.querySelector('.c-duration'), fmtSpan(duration(t)));
  setText(tr.querySelector('.c-cost'), fmtCost(t.cost_usd));
  const links = tr.querySelector('.c-links');
  const key = `${t.pr_url ?? ''}|${t.preview_url ?? ''}`;
  if (links.dataset.key !== key) {
    links.dataset.key = key;
    links.replaceChildren();
    const pr = safeUrl(t.pr_url);
    const pv = safeUrl(t.preview_url);
    if (pr) links.append(link(pr, prLabel(t), 'pr-link', true));
    if (pv) links.append(link(pv, 'preview', 'preview-link', true));
    if (!pr && !pv) links.append(el('span', 'muted', '—'));
  }
}

function prLabel(t) {
  const m = /\/pull\/(\d+)/.exec(String(t.pr_url || ''));
  return m ? `PR #${m[1]}` : 'PR';
}

// Live status events carry most fields; the timestamps come with one GET per task (coalesced).
function refreshListTask(id) {
  const gen = state.gen;
  debounce(
    `list-task-${id}`,
    async () => {
      try {
        const t = await api(`/api/tasks/${Number(id)}`);
        if (gen === state.gen && state.route.view === 'tasks') upsertTask(t);
      } catch {
        /* a later event or reload fixes it */
      }
    },
    120,
  );
}

function tick() {
  if (state.route.view === 'tasks') {
    for (const tr of $('task-rows').children) {
      const t = state.tasks.get(Number(tr.dataset.id));
      if (t) {
        setText(tr.querySelector('.c-age time'), fmtAge(t.created_at));
        setText(tr.querySelector('.c-duration'), fmtSpan(duration(t)));
      }
    }
  } else if (state.route.view === 'workflows') {
    for (const tr of $('workflow-rows').children) {
      const w = state.workflows.get(Number(tr.dataset.id));
      if (w) setText(tr.querySelector('.c-age time'), fmtAge(w.created_at));
    }
  } else if (state.route.view === 'task' && state.task && ACTIVE.has(state.task.status)) {
    const dd = document.querySelector('#t-details [data-key="duration"]');
    if (dd) setText(dd, fmtSpan(duration(state.task)));
  }
}

// ---- workflow list --------------------------------------------------------------------------

async function loadWorkflows(gen) {
  try {
    const rows = await api('/api/workflows?limit=100');
    if (gen !== state.gen) return;
    state.workflows.clear();
    const body = $('workflow-rows');
    const keep = new Map([...body.children].map((tr) => [Number(tr.dataset.id), tr]));
    const out = [];
    for (const w of rows) {
      rememberRepo(w.repo);
      state.workflows.set(w.id, w);
      const tr = keep.get(w.id) ?? buildWorkflowRow(w);
      fillWorkflowRow(tr, w);
      out.push(tr);
    }
    body.replaceChildren(...out);
    $('workflows-empty').hidden = rows.length > 0;
    showError('');
  } catch (err) {
    if (gen === state.gen) showError(`Could not load workflows: ${err.message}`);
  }
}

function buildWorkflowRow(w) {
  const tr = el('tr');
  tr.dataset.id = String(w.id);
  const main = cell(tr, 'c-task', 'Workflow');
  const a = link(`/workflows/${Number(w.id)}`, '', 'task-link');
  a.append(el('span', 'id', `#${w.id}`), el('span', 'title'));
  main.append(a, el('span', 'sub'));
  cell(tr, 'c-status', 'Status').append(el('span', 'pill'));
  cell(tr, 'c-repo', 'Repository');
  cell(tr, 'c-step', 'Step');
  cell(tr, 'c-iter', 'Iteration');
  cell(tr, 'c-age', 'Age').append(el('time'));
  cell(tr, 'c-cost', 'Cost');
  cell(tr, 'c-links', 'Links');
  return tr;
}

function fillWorkflowRow(tr, w) {
  setText(tr.querySelector('.c-task .title'), w.title);
  setText(tr.querySelector('.c-task .sub'), w.name);
  updatePill(tr.querySelector('.c-status .pill'), w.status);
  setText(tr.querySelector('.c-repo'), w.repo);
  const step = (w.steps || []).find((s) => s.step_index === w.current_step);
  setText(tr.querySelector('.c-step'), step ? `${w.current_step + 1}/${w.steps.length} ${step.agent_type}` : '—');
  setText(tr.querySelector('.c-iter'), `${Number(w.iteration) + 1} / ${w.max_iterations}`);
  const time = tr.querySelector('.c-age time');
  time.dateTime = w.created_at || '';
  time.title = fmtTime(w.created_at);
  setText(time, fmtAge(w.created_at));
  setText(tr.querySelector('.c-cost'), fmtCost(w.cost_usd));
  const links = tr.querySelector('.c-links');
  links.replaceChildren();
  const pr = safeUrl(w.pr_url);
  links.append(pr ? link(pr, prLabel(w), 'pr-link', true) : el('span', 'muted', '—'));
}

// ---- task page ------------------------------------------------------------------------------

async function loadTaskPage(gen, id) {
  if (!state.task || state.task.id !== id) {
    state.task = null;
    state.clarifyKey = '';
    state.messageIds = new Set();
    $('t-logs').replaceChildren();
    $('t-messages').replaceChildren();
    $('t-handoffs').replaceChildren();
    $('t-details').replaceChildren();
    setText($('t-id'), `#${id}`);
    setText($('t-title'), '');
    $('t-clarify').hidden = true;
    setText($('t-log-count'), '');
  }
  // A reload of the same page (stream reconnect) keeps the log and reads on from where it was.
  if (!state.log || state.log.taskId !== id || state.log.gen !== gen) {
    stopLogPolling();
    state.log = { taskId: id, since: null, count: 0, lastId: 0, timer: null, busy: false, again: false, cwd: '', gen };
    $('t-logs').replaceChildren();
    $('t-logs-empty').hidden = true;
  }
  try {
    const t = await api(`/api/tasks/${id}`);
    if (gen !== state.gen) return;
    renderTask(t);
  } catch (err) {
    if (gen !== state.gen) return;
    if (err.status === 404) showMissing(`Task #${id}`);
    else showError(`Could not load task #${id}: ${err.message}`);
    return;
  }
  pollLogs(gen);
  loadHandoffs(gen, id);
  loadTaskMessages(gen, id);
}

function refreshTask(gen, id, alsoSide) {
  debounce(
    `task-${id}`,
    async () => {
      try {
        const t = await api(`/api/tasks/${id}`);
        if (gen !== state.gen) return;
        renderTask(t);
        if (alsoSide) loadHandoffs(gen, id);
      } catch (err) {
        if (gen === state.gen) showError(`Could not refresh the task: ${err.message}`);
      }
    },
    100,
  );
}

function parseClarification(raw) {
  if (!raw) return { history: [] };
  try {
    const v = JSON.parse(raw);
    return { ...v, history: Array.isArray(v.history) ? v.history : [] };
  } catch {
    return { history: [] };
  }
}

function kvRow(dl, key, label, value) {
  const dt = el('dt', '', label);
  const dd = el('dd');
  dd.dataset.key = key;
  if (value instanceof Node) dd.append(value);
  else dd.textContent = value === null || value === undefined || value === '' ? '—' : String(value);
  dl.append(dt, dd);
  return dd;
}

// Every agent run of the task (first run, resumes, CI and review revisions) with its outcome and cost.
// The list endpoint does not carry runs; keep what the task page loaded then.
function renderRuns(runs) {
  if (!runs) return;
  const list = $('t-runs');
  list.replaceChildren();
  runs.forEach((r, i) => {
    const kind = { run: 'run', resume: 'resumed', ci_fix: 'CI fix', review_fix: 'review fix' }[r.kind] ?? r.kind;
    const dur = r.duration_ms ? fmtSpan(r.duration_ms) : '';
    const item = el('li', `run run-${r.outcome}`, `#${i + 1} ${kind} · ${r.outcome}${dur ? ` · ${dur}` : ''} · ${fmtCost(r.cost_usd)}`);
    item.dataset.kind = r.kind;
    if (r.error) item.title = r.error;
    list.append(item);
  });
  $('t-runs-box').hidden = runs.length === 0;
}

function renderTask(t) {
  const prev = state.task;
  if (prev && prev.id === t.id && prev.updated_at && t.updated_at && t.updated_at < prev.updated_at) return;
  state.task = t;
  rememberRepo(t.repo);
  setText($('t-id'), `#${t.id}`);
  setText($('t-title'), t.title);
  document.title = `Factory · #${t.id} ${t.title}`;
  updatePill($('t-status'), t.status);

  // Toolbar
  $('t-run').hidden = !(t.status === 'queued' && !t.run_requested);
  const cancel = $('t-cancel');
  const canCancel = ACTIVE.has(t.status);
  if (!canCancel) disarm(cancel, 'Cancel task');
  cancel.hidden = !canCancel;
  setLink($('t-pr'), t.pr_url, prLabel(t));
  setLink($('t-preview'), t.preview_url, 'Preview');
  const wf = $('t-workflow');
  if (t.workflow_id) {
    wf.href = `/workflows/${Number(t.workflow_id)}`;
    setText(
      wf,
      `Workflow #${t.workflow_id}${t.workflow_step !== null && t.workflow_step !== undefined ? `, step ${t.workflow_step + 1}` : ''}`,
    );
    wf.hidden = false;
  } else wf.hidden = true;

  // Details
  const dl = $('t-details');
  dl.replaceChildren();
  kvRow(dl, 'status', 'Status', t.status);
  kvRow(dl, 'repo', 'Repository', t.repo);
  kvRow(dl, 'agent', 'Agent', t.agent_type);
  kvRow(dl, 'branch', 'Branch', t.branch_name ? `${t.branch_name}${t.base_branch ? ` (from ${t.base_branch})` : ''}` : '');
  const pr = safeUrl(t.pr_url);
  kvRow(dl, 'pr', 'Pull request', pr ? link(pr, t.pr_url, '', true) : t.pr_url || '');
  const pv = safeUrl(t.preview_url);
  if (t.preview_url) kvRow(dl, 'preview', 'Preview', pv ? link(pv, t.preview_url, '', true) : t.preview_url);
  kvRow(dl, 'created', 'Created', `${fmtTime(t.created_at)} (${fmtAge(t.created_at)})`);
  kvRow(dl, 'started', 'Started', t.started_at ? fmtTime(t.started_at) : '');
  kvRow(dl, 'completed', 'Completed', t.completed_at ? fmtTime(t.completed_at) : '');
  kvRow(dl, 'duration', 'Duration', fmtSpan(duration(t)));
  kvRow(dl, 'cost', 'Cost', fmtCost(t.cost_usd));
  const u = t.usage || {};
  if (u.input_tokens || u.output_tokens)
    kvRow(dl, 'tokens', 'Tokens', `${u.input_tokens ?? 0} in · ${u.output_tokens ?? 0} out · ${u.cache_read_tokens ?? 0} cached`);
  if (t.attempts) kvRow(dl, 'attempts', 'Attempts', t.attempts);
  if (t.not_before) kvRow(dl, 'not_before', 'Paused until', fmtTime(t.not_before));
  if (t.parent_task_id) kvRow(dl, 'parent', 'Parent task', link(`/tasks/${Number(t.parent_task_id)}`, `#${t.parent_task_id}`));
  if (t.error) kvRow(dl, 'error', 'Error', t.error).classList.add('err-text', 'pre');
  if (t.result_summary) kvRow(dl, 'result', 'Result', longText(t.result_summary, 300));
  if (t.pr_state) kvRow(dl, 'pr_state', 'PR state', `${t.pr_state}${t.ci_conclusion ? ` · CI ${t.ci_conclusion}` : ''}`);
  renderRuns(Array.isArray(t.runs) ? t.runs : null);
  setText($('t-description'), t.description || '(none)');

  // Clarification
  const ctx = parseClarification(t.clarification_context);
  const waiting = t.status === 'waiting_for_input' && Boolean(ctx.pending_question);
  const key = waiting ? `${ctx.asked_at ?? ''}|${ctx.pending_question}` : '';
  if (key !== state.clarifyKey) {
    state.clarifyKey = key;
    $('t-answer').value = '';
    $('t-answer-send').disabled = false;
    setText($('t-question'), ctx.pending_question || '');
    setText($('t-qcontext'), ctx.context || '');
    $('t-qcontext').hidden = !ctx.context;
    const opts = $('t-options');
    opts.replaceChildren();
    for (const o of Array.isArray(ctx.options) ? ctx.options : []) {
      const b = el('button', 'secondary small option', String(o));
      b.type = 'button';
      b.addEventListener('click', () => {
        $('t-answer').value = String(o);
        $('t-answer').focus();
      });
      opts.append(b);
    }
  }
  $('t-clarify').hidden = !waiting;
  const hist = ctx.history.filter((h) => h && h.response !== undefined);
  $('t-history-box').hidden = hist.length === 0;
  $('t-history').replaceChildren(
    ...hist.map((h) => {
      const li = el('li');
      li.append(el('p', 'q', `Q: ${h.question ?? ''}`), el('p', 'a', `A: ${h.response}${h.answered_by ? ` (${h.answered_by})` : ''}`));
      return li;
    }),
  );

  // A status change may end or start the log tail.
  if (!prev || prev.id !== t.id || prev.status !== t.status) scheduleLogPoll(0);
}

/** Short text as is; long text (a raw transcript, say) folded behind its first line. */
function longText(text, max) {
  const s = String(text);
  if (s.length <= max) return el('span', 'pre', s);
  const d = el('details', 'long');
  d.append(el('summary', '', oneLine(s, 120)), el('pre', 'long-body', s));
  return d;
}

function setLink(a, url, text) {
  const safe = safeUrl(url);
  if (safe) {
    a.href = safe;
    setText(a, text);
  }
  a.hidden = !safe;
}

// Two-step buttons: the first click arms, the second acts (no confirm() dialogs).
function disarm(btn, label) {
  clearTimeout(btn._armTimer);
  delete btn.dataset.armed;
  btn.disabled = false;
  setText(btn, label);
}

function armOrRun(btn, label, confirmLabel, action) {
  if (btn.dataset.armed !== '1') {
    btn.dataset.armed = '1';
    setText(btn, confirmLabel);
    btn._armTimer = setTimeout(() => disarm(btn, label), 5000);
    return;
  }
  clearTimeout(btn._armTimer);
  btn.disabled = true;
  setText(btn, 'Cancelling…');
  action().finally(() => disarm(btn, label));
}

async function cancelTask() {
  const t = state.task;
  if (!t) return;
  const gen = state.gen;
  try {
    const updated = await api(`/api/tasks/${t.id}/cancel`, { method: 'POST', body: {} });
    if (gen === state.gen) {
      renderTask(updated);
      showNotice(`Task #${t.id} is ${updated.status}.`);
    }
  } catch (err) {
    if (gen === state.gen) showError(`Could not cancel: ${err.message}`);
  }
}

async function runTask() {
  const t = state.task;
  if (!t) return;
  const gen = state.gen;
  $('t-run').disabled = true;
  try {
    const updated = await api(`/api/tasks/${t.id}/run`, { method: 'POST', body: {} });
    if (gen === state.gen) renderTask(updated);
  } catch (err) {
    if (gen === state.gen) showError(`Could not start the task: ${err.message}`);
  } finally {
    $('t-run').disabled = false;
  }
}

async function sendAnswer(ev) {
  ev.preventDefault();
  const t = state.task;
  const answer = $('t-answer').value.trim();
  if (!t || !answer) return;
  const gen = state.gen;
  $('t-answer-send').disabled = true;
  try {
    const updated = await api(`/api/tasks/${t.id}/answer`, { method: 'POST', body: { answer } });
    if (gen !== state.gen) return;
    renderTask(updated);
    showNotice('Answer sent; the agent resumes.');
  } catch (err) {
    if (gen === state.gen) showError(`Could not send the answer: ${err.message}`);
  } finally {
    $('t-answer-send').disabled = false;
  }
}

// ---- log tail -------------------------------------------------------------------------------

function stopLogPolling() {
  if (state.log?.timer) clearTimeout(state.log.timer);
  state.log = null;
}

function scheduleLogPoll(delay) {
  const log = state.log;
  if (!log || log.gen !== state.gen) return;
  clearTimeout(log.timer);
  log.timer = setTimeout(() => pollLogs(log.gen), delay);
}

async function pollLogs(gen) {
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

function logItem(row, kind, label, text) {
  const li = el('li', `ln k-${kind} s-${row.stream}`);
  li.dataset.id = String(row.id);
  const time = el('time', 'ts', fmtClock(row.timestamp));
  time.dateTime = row.timestamp || '';
  li.append(time);
  if (label) li.append(el('span', 'tag', label));
  li.append(el('span', 'txt', text));
  return li;
}

function relPath(p) {
  const s = String(p ?? '');
  const cwd = state.log?.cwd;
  return cwd && s.startsWith(`${cwd}/`) ? s.slice(cwd.length + 1) : s;
}

function toolSummary(name, input) {
  if (!input || typeof input !== 'object') return '';
  const i = input;
  switch (name) {
    case 'Bash':
      return oneLine(i.command, 300);
    case 'Read':
    case 'Edit':
    case 'MultiEdit':
    case 'Write':
      return relPath(i.file_path);
    case 'NotebookEdit':
      return relPath(i.notebook_path);
    case 'Glob':
      return `${i.pattern ?? ''}${i.path ? ` in ${relPath(i.path)}` : ''}`;
    case 'Grep':
      return `${i.pattern ?? ''}${i.path ? ` in ${relPath(i.path)}` : ''}${i.glob ? ` (${i.glob})` : ''}`;
    case 'WebFetch':
      return String(i.url ?? '');
    case 'WebSearch':
      return String(i.query ?? '');
    case 'Task':
      return oneLine(i.description ?? i.prompt, 200);
    case 'TodoWrite':
      return Array.isArray(i.todos) ? `${i.todos.length} item(s)` : '';
    default:
      return oneLine(JSON.stringify(i), 200);
  }
}

function resultText(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content.map((c) => (c && typeof c === 'object' ? (c.type === 'text' ? c.text : `[${c.type}]`) : String(c))).join('\n');
  return content === undefined ? '' : JSON.stringify(content);
}

/** One stored log line as one or more list items: stream-json events become readable lines. */
function renderLogLine(row) {
  const text = String(row.message ?? '');
  if (row.stream === 'system') return [logItem(row, 'factory', 'factory', text)];
  if (row.stream === 'stderr') return [logItem(row, 'stderr', 'stderr', text)];
  let ev = null;
  if (text.startsWith('{')) {
    try {
      ev = JSON.parse(text);
    } catch {
      ev = null;
    }
  }
  if (!ev || typeof ev !== 'object' || typeof ev.type !== 'string') return [logItem(row, 'raw', '', truncate(text, 4000))];
  switch (ev.type) {
    case 'system': {
      if (ev.subtype === 'init') {
        if (typeof ev.cwd === 'string') state.log.cwd = ev.cwd;
        const tools = Array.isArray(ev.tools) ? `${ev.tools.length} tools` : '';
        return [logItem(row, 'init', 'session', ['started', ev.model ? `model ${ev.model}` : '', tools].filter(Boolean).join(' · '))];
      }
      return [logItem(row, 'init', 'system', oneLine(ev.subtype ?? JSON.stringify(ev), 300))];
    }
    case 'assistant': {
      const content = Array.isArray(ev.message?.content) ? ev.message.content : [];
      const out = [];
      for (const c of content) {
        if (!c || typeof c !== 'object') continue;
        if (c.type === 'text') out.push(logItem(row, 'text', '', truncate(c.text, 4000)));
        else if (c.type === 'tool_use') out.push(logItem(row, 'tool', String(c.name ?? 'tool'), toolSummary(c.name, c.input)));
        else if (c.type === 'thinking') out.push(logItem(row, 'thinking', 'thinking', oneLine(c.thinking, 300)));
      }
      return out.length ? out : [logItem(row, 'raw', 'assistant', '')];
    }
    case 'user': {
      const content = Array.isArray(ev.message?.content) ? ev.message.content : [ev.message?.content];
      const out = [];
      for (const c of content) {
        if (c && typeof c === 'object' && c.type === 'tool_result') {
          const li = logItem(row, 'result', c.is_error ? 'tool error' : '↳', oneLine(resultText(c.content), 300));
          if (c.is_error) li.classList.add('err');
          out.push(li);
        } else if (c !== undefined && c !== null) {
          out.push(logItem(row, 'user', 'user', oneLine(resultText(c && typeof c === 'object' && c.type === 'text' ? c.text : c), 300)));
        }
      }
      return out.length ? out : [logItem(row, 'raw', 'user', '')];
    }
    case 'result': {
      const ok = ev.is_error !== true && (ev.subtype === undefined || ev.subtype === 'success');
      const bits = [
        ev.num_turns !== undefined ? `${ev.num_turns} turns` : '',
        ev.duration_ms !== undefined ? fmtSpan(Number(ev.duration_ms)) : '',
        ev.total_cost_usd !== undefined ? fmtCost(ev.total_cost_usd) : '',
      ]
        .filter(Boolean)
        .join(' · ');
      const li = logItem(
        row,
        'final',
        ok ? '✓ result' : `✗ ${ev.subtype ?? 'error'}`,
        `${bits}${ev.result ? ` — ${oneLine(ev.result, 600)}` : ''}`,
      );
      if (!ok) li.classList.add('err');
      return [li];
    }
    default:
      return [logItem(row, 'raw', ev.type, oneLine(text, 300))];
  }
}

// ---- handoffs and messages of a task --------------------------------------------------------

async function loadHandoffs(gen, id) {
  try {
    const [from, to] = await Promise.all([api(`/api/tasks/${id}/handoffs?direction=from`), api(`/api/tasks/${id}/handoffs?direction=to`)]);
    if (gen !== state.gen) return;
    const seen = new Set();
    const rows = [...to.map((h) => ({ h, dir: 'received' })), ...from.map((h) => ({ h, dir: 'produced' }))]
      .filter(({ h }) => (seen.has(h.id) ? false : (seen.add(h.id), true)))
      .sort((a, b) => a.h.id - b.h.id);
    $('t-handoffs').replaceChildren(...rows.map(({ h, dir }) => handoffCard(h, dir)));
    $('t-handoffs-empty').hidden = rows.length > 0;
  } catch (err) {
    if (err.status === 404) {
      // The workflow routes are not installed: no handoffs to show.
      $('t-handoffs-empty').hidden = false;
      return;
    }
    if (gen === state.gen) showError(`Could not load handoffs: ${err.message}`);
  }
}

function handoffCard(h, dir) {
  const li = el('li', `card handoff ${dir}`);
  li.dataset.id = String(h.id);
  const meta = el('div', 'meta');
  meta.append(el('span', 'badge', dir));
  meta.append(link(`/tasks/${Number(h.from_task_id)}`, `#${h.from_task_id}`));
  meta.append(el('span', 'muted', '→'));
  meta.append(h.to_task_id ? link(`/tasks/${Number(h.to_task_id)}`, `#${h.to_task_id}`) : el('span', 'muted', 'next step'));
  meta.append(el('span', 'muted', h.output_type));
  const time = el('time', 'muted', fmtTime(h.created_at));
  time.dateTime = h.created_at || '';
  meta.append(time);
  li.append(meta, el('p', 'body', h.summary || '(no summary)'));
  if (h.content) {
    const d = el('details');
    d.append(el('summary', '', 'Details'), el('pre', 'content', h.content));
    li.append(d);
  }
  return li;
}

async function loadTaskMessages(gen, id) {
  try {
    const rows = await api(`/api/messages?task_id=${id}&limit=200`);
    if (gen !== state.gen) return;
    rows.sort((a, b) => a.id - b.id);
    for (const m of rows) addTaskMessage(m);
    $('t-messages-empty').hidden = state.messageIds.size > 0;
  } catch (err) {
    if (err.status === 404) {
      $('t-messages-empty').hidden = false;
      return;
    }
    if (gen === state.gen) showError(`Could not load messages: ${err.message}`);
  }
}

function addTaskMessage(m) {
  if (state.messageIds.has(m.id)) return;
  state.messageIds.add(m.id);
  const type = ['info', 'question', 'handoff', 'status', 'error'].includes(m.message_type) ? m.message_type : 'info';
  const li = el('li', `card msg-card type-${type}`);
  li.dataset.id = String(m.id);
  const meta = el('div', 'meta');
  meta.append(
    el('span', 'badge', m.message_type),
    el('span', 'who', m.sender),
    el('span', 'muted', m.recipient ? `→ ${m.recipient}` : '→ everyone'),
  );
  const time = el('time', 'muted', fmtTime(m.created_at));
  time.dateTime = m.created_at || '';
  meta.append(time);
  li.append(meta, el('p', 'body', m.message));
  const list = $('t-messages');
  let before = null;
  for (const child of list.children) {
    if (Number(child.dataset.id) > m.id) {
      before = child;
      break;
    }
  }
  list.insertBefore(li, before);
  $('t-messages-empty').hidden = true;
}

// ---- workflow page --------------------------------------------------------------------------

async function loadWorkflowPage(gen, id) {
  if (!state.workflow || state.workflow.id !== id) {
    state.workflow = null;
    setText($('w-id'), `#${id}`);
    setText($('w-title'), '');
    $('w-details').replaceChildren();
    $('w-steps').replaceChildren();
    $('w-timeline').replaceChildren();
  }
  try {
    const wf = await api(`/api/workflows/${id}`);
    if (gen !== state.gen) return;
    let handoffs = [];
    try {
      handoffs = await api(`/api/workflows/${id}/handoffs`);
    } catch {
      handoffs = [];
    }
    // The tasks of every iteration: the ones that handed off, plus the current steps' tasks.
    const ids = new Set();
    for (const h of handoffs) if (h.from_task_id) ids.add(h.from_task_id);
    for (const s of wf.steps || []) if (s.task_id) ids.add(s.task_id);
    const tasks = await Promise.all(
      [...ids]
        .sort((a, b) => a - b)
        .map(async (tid) => {
          const cached = state.taskCache.get(tid);
          if (cached && !ACTIVE.has(cached.status) && cached.status !== 'in_review') return cached;
          try {
            const t = await api(`/api/tasks/${tid}`);
            if (state.taskCache.size > 500) state.taskCache.clear();
            state.taskCache.set(tid, t);
            return t;
          } catch {
            return null;
          }
        }),
    );
    if (gen !== state.gen) return;
    renderWorkflow(wf, handoffs, tasks.filter(Boolean));
  } catch (err) {
    if (gen !== state.gen) return;
    if (err.status === 404) showMissing(`Workflow #${id}`);
    else showError(`Could not load workflow #${id}: ${err.message}`);
  }
}

function refreshWorkflow() {
  const gen = state.gen;
  const id = state.route.id;
  debounce(`workflow-${id}`, () => loadWorkflowPage(gen, id), 200);
}

const SEVERITIES = ['blocker', 'major', 'minor', 'nit'];

/** Reads a reviewer's fenced json verdict from a handoff (earlier iterations keep only that). */
function reviewFromText(text) {
  const blocks = [...String(text || '').matchAll(/```(?:json)?\s*\n([\s\S]*?)```/g)].reverse();
  for (const b of blocks) {
    let v;
    try {
      v = JSON.parse(b[1]);
    } catch {
      continue;
    }
    if (!v || typeof v !== 'object' || !('approved' in v)) continue;
    const counts = { blocker: 0, major: 0, minor: 0, nit: 0 };
    for (const i of Array.isArray(v.issues) ? v.issues : []) {
      const s = String(i?.severity ?? '').toLowerCase();
      counts[SEVERITIES.includes(s) ? s : 'major']++;
    }
    return { approved: v.approved === true && counts.blocker === 0 && counts.major === 0, summary: String(v.summary ?? ''), counts };
  }
  return null;
}

function reviewBlock(review) {
  const box = el('div', `review ${review.approved ? 'approved' : 'rejected'}`);
  const head = el('div', 'review-head');
  head.append(el('span', `verdict ${review.approved ? 'ok' : 'no'}`, review.approved ? 'approved' : 'changes requested'));
  const counts = el('span', 'counts');
  for (const s of SEVERITIES) {
    const n = Number(review.counts?.[s] ?? 0);
    const chip = el('span', `count sev-${s}${n ? '' : ' zero'}`, `${s} ${n}`);
    chip.dataset.severity = s;
    chip.dataset.count = String(n);
    counts.append(chip);
  }
  head.append(counts);
  box.append(head);
  if (review.summary) box.append(el('p', 'review-summary', review.summary));
  return box;
}

function renderWorkflow(wf, handoffs, tasks) {
  state.workflow = wf;
  rememberRepo(wf.repo);
  setText($('w-id'), `#${wf.id}`);
  setText($('w-title'), wf.title);
  document.title = `Factory · Workflow #${wf.id} ${wf.title}`;
  updatePill($('w-status'), wf.status);
  const cancel = $('w-cancel');
  const canCancel = wf.status === 'running' || wf.status === 'pending';
  if (!canCancel) disarm(cancel, 'Cancel workflow');
  cancel.hidden = !canCancel;
  setLink($('w-pr'), wf.pr_url, prLabel(wf));

  const dl = $('w-details');
  dl.replaceChildren();
  kvRow(dl, 'name', 'Workflow', wf.name);
  kvRow(dl, 'status', 'Status', wf.status);
  kvRow(dl, 'repo', 'Repository', wf.repo);
  const cur = (wf.steps || []).find((s) => s.step_index === wf.current_step);
  kvRow(dl, 'step', 'Current step', cur ? `${wf.current_step + 1} of ${wf.steps.length} (${cur.agent_type})` : '');
  kvRow(dl, 'iteration', 'Iteration', `${Number(wf.iteration) + 1} / ${wf.max_iterations}`);
  kvRow(dl, 'branch', 'Branch', wf.branch_name);
  const pr = safeUrl(wf.pr_url);
  kvRow(dl, 'pr', 'Pull request', pr ? link(pr, wf.pr_url, '', true) : wf.pr_url || '');
  kvRow(dl, 'created', 'Created', `${fmtTime(wf.created_at)} (${fmtAge(wf.created_at)})`);
  kvRow(dl, 'completed', 'Completed', wf.completed_at ? fmtTime(wf.completed_at) : '');
  const start = ms(wf.started_at ?? wf.created_at);
  const end = ms(wf.completed_at);
  kvRow(dl, 'duration', 'Duration', start === null ? '' : fmtSpan((end ?? Date.now()) - start));
  // The API sums the current step tasks; earlier iterations' tasks are known here too.
  const total = tasks.reduce((sum, t) => sum + (Number(t.cost_usd) || 0), 0);
  kvRow(
    dl,
    'cost',
    'Cost',
    tasks.length
      ? `${fmtCost(Math.max(total, Number(wf.cost_usd) || 0))} (${tasks.length} task${tasks.length === 1 ? '' : 's'})`
      : fmtCost(wf.cost_usd),
  );
  if (wf.error) kvRow(dl, 'error', 'Error', wf.error).classList.add('err-text', 'pre');
  setText($('w-result'), wf.result ? `Result: ${wf.result}` : '');
  $('w-result').hidden = !wf.result;

  // Steps: the definition with each step's current state.
  const taskById = new Map(tasks.map((t) => [t.id, t]));
  $('w-steps').replaceChildren(
    ...(wf.steps || []).map((s) => {
      const li = el('li', `step st-${s.status}${s.step_index === wf.current_step && wf.status === 'running' ? ' current' : ''}`);
      li.dataset.index = String(s.step_index);
      const head = el('div', 'step-head');
      head.append(el('span', 'step-no', String(s.step_index + 1)), el('strong', 'agent', s.agent_type), statusPill(s.status));
      if (s.iteration) head.append(el('span', 'muted', `iteration ${s.iteration + 1}`));
      li.append(head);
      const meta = el('div', 'meta');
      if (s.input_key) meta.append(el('span', 'muted', `in: ${s.input_key}`));
      if (s.output_key) meta.append(el('span', 'muted', `out: ${s.output_key}`));
      if (s.condition) meta.append(el('span', 'muted', `if ${s.condition}`));
      if (s.loop_to) meta.append(el('span', 'muted', `loops to ${s.loop_to}`));
      if (s.task) {
        meta.append(
          link(`/tasks/${Number(s.task.id)}`, `task #${s.task.id}`),
          statusPill(s.task.status),
          el('span', 'muted', fmtCost(s.task.cost_usd)),
        );
      }
      if (meta.children.length) li.append(meta);
      if (s.review) li.append(reviewBlock(s.review));
      if (s.task?.error && s.task.status === 'failed') li.append(el('p', 'err-text', oneLine(s.task.error, 300)));
      return li;
    }),
  );

  // Timeline: every task of the workflow, grouped by iteration (a step index going back starts one).
  const stepOf = new Map((wf.steps || []).filter((s) => s.task_id).map((s) => [s.task_id, s]));
  const handoffOf = new Map();
  for (const h of handoffs) handoffOf.set(h.from_task_id, h);
  const groups = [];
  let iter = 0;
  let prevStep = -1;
  for (const t of [...taskById.values()].sort((a, b) => a.id - b.id)) {
    const step = t.workflow_step ?? 0;
    if (groups.length && step <= prevStep) iter++;
    const current = stepOf.get(t.id);
    if (current) iter = Math.max(iter, current.iteration);
    prevStep = step;
    if (!groups[iter]) groups[iter] = [];
    groups[iter].push(t);
  }
  const timeline = $('w-timeline');
  const nodes = [];
  groups.forEach((list, i) => {
    if (!list) return;
    const sec = el('section', 'iter');
    sec.dataset.iteration = String(i + 1);
    sec.append(el('h3', '', `Iteration ${i + 1}`));
    const ol = el('ol', 'tl');
    for (const t of list) {
      const li = el('li', `tl-item st-${t.status}`);
      li.dataset.task = String(t.id);
      const head = el('div', 'tl-head');
      head.append(
        el('span', 'step-no', String((t.workflow_step ?? 0) + 1)),
        el('strong', 'agent', t.agent_type),
        link(`/tasks/${Number(t.id)}`, `#${t.id}`),
        statusPill(t.status),
        el('span', 'muted', fmtSpan(duration(t))),
        el('span', 'muted', fmtCost(t.cost_usd)),
      );
      li.append(head);
      const h = handoffOf.get(t.id);
      if (t.agent_type === 'reviewer') {
        const st = stepOf.get(t.id);
        const review = st?.review ?? (h ? reviewFromText(h.content) : null);
        if (review) li.append(reviewBlock(review));
        else if (!ACTIVE.has(t.status)) li.append(el('p', 'muted', 'No verdict recorded.'));
      } else if (h?.summary) {
        li.append(el('p', 'handoff-summary', truncate(h.summary, 600)));
      }
      if (t.error && t.status === 'failed') li.append(el('p', 'err-text', oneLine(t.error, 300)));
      ol.append(li);
    }
    sec.append(ol);
    nodes.push(sec);
  });
  timeline.replaceChildren(...nodes);
  $('w-timeline-empty').hidden = nodes.length > 0;
}

async function cancelWorkflow() {
  const wf = state.workflow;
  if (!wf) return;
  const gen = state.gen;
  try {
    await api(`/api/workflows/${wf.id}/cancel`, { method: 'POST', body: {} });
    if (gen === state.gen) {
      showNotice(`Workflow #${wf.id} cancelled.`);
      loadWorkflowPage(gen, wf.id);
    }
  } catch (err) {
    if (gen === state.gen) showError(`Could not cancel: ${err.message}`);
  }
}

// ---- the create form ------------------------------------------------------------------------

function openNewPanel() {
  const panel = $('new-panel');
  // The form sits under the heading of the list page that is shown.
  const head = document.querySelector(`#v-${state.route.view} .page-head`);
  if (head && head.nextElementSibling !== panel) head.after(panel);
  panel.hidden = false;
  if (!$('n-repo').value) $('n-repo').value = localStorage.getItem(REPO_KEY) || '';
  syncKind();
  ($('n-repo').value ? $('n-title') : $('n-repo')).focus();
}

function formKind() {
  return document.querySelector('#new-form input[name="kind"]:checked')?.value || 'task';
}

function syncKind() {
  const wf = formKind() === 'code_review';
  $('n-agent-label').hidden = wf;
  $('n-run-label').hidden = wf;
  setText($('n-submit'), wf ? 'Start workflow' : 'Create task');
}

async function submitNew(ev) {
  ev.preventDefault();
  const kind = formKind();
  const repo = $('n-repo').value.trim();
  const title = $('n-title').value.trim();
  const description = $('n-description').value;
  if (!title) {
    $('n-title').focus();
    return;
  }
  const btn = $('n-submit');
  btn.disabled = true;
  showError('');
  try {
    if (kind === 'code_review') {
      const wf = await api('/api/workflows/code_review', { method: 'POST', body: { title, description, repo } });
      showNotice('Started workflow ', link(`/workflows/${Number(wf.id)}`, `#${wf.id}`), `: ${wf.title}`);
      if (state.route.view === 'workflows') loadWorkflows(state.gen);
    } else {
      const body = { title, description, repo };
      if ($('n-agent').value) body.agent_type = $('n-agent').value;
      const run = $('n-run').checked;
      const t = await api(`/api/tasks${run ? '?auto_run=true' : ''}`, { method: 'POST', body });
      // A status event may already have put the row in (and moved it on); never go back to queued.
      if (state.route.view === 'tasks' && !state.tasks.has(t.id)) upsertTask(t);
      showNotice('Created task ', link(`/tasks/${Number(t.id)}`, `#${t.id}`), `: ${t.title}`);
    }
    if (repo) localStorage.setItem(REPO_KEY, repo);
    $('n-title').value = '';
    $('n-description').value = '';
  } catch (err) {
    showError(`Could not create: ${err.message}`);
  } finally {
    btn.disabled = false;
  }
}

// ---- live stream ----------------------------------------------------------------------------

function setStatus(s, text) {
  const e = $('status');
  e.dataset.state = s;
  setText(e, text);
}

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

async function connect() {
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

// ---- start ----------------------------------------------------------------------------------

function init() {
  document.addEventListener('click', (ev) => {
    const a = ev.target instanceof Element ? ev.target.closest('a[data-nav]') : null;
    if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) return;
    ev.preventDefault();
    navigate(`${url.pathname}${url.search}`);
  });
  window.addEventListener('popstate', route);
  $('task-filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    applyFilters();
  });
  $('f-status').addEventListener('change', applyFilters);
  $('f-clear').addEventListener('click', () => {
    $('f-status').value = '';
    $('f-repo').value = '';
    applyFilters();
  });
  $('tasks-more').addEventListener('click', () => loadTasks(state.gen, true));
  for (const b of document.querySelectorAll('.new-open')) b.addEventListener('click', openNewPanel);
  $('new-close').addEventListener('click', () => {
    $('new-panel').hidden = true;
  });
  for (const r of document.querySelectorAll('#new-form input[name="kind"]')) r.addEventListener('change', syncKind);
  $('new-form').addEventListener('submit', submitNew);
  $('t-run').addEventListener('click', runTask);
  $('t-cancel').addEventListener('click', () => armOrRun($('t-cancel'), 'Cancel task', 'Confirm cancel', cancelTask));
  $('w-cancel').addEventListener('click', () => armOrRun($('w-cancel'), 'Cancel workflow', 'Confirm cancel', cancelWorkflow));
  $('t-answer-form').addEventListener('submit', sendAnswer);
  $('t-answer').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) $('t-answer-form').requestSubmit();
  });
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') $('new-panel').hidden = true;
  });
  setInterval(tick, 5000);
  syncKind();
  route();
  connect();
}

init();
