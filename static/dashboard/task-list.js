// The task list (/ and /tasks): filters kept in the URL, paged loading, and rows that are updated
// in place (never rebuilt) as live status events arrive.
import { STATUSES, debounce, state } from './state.js';
import { $, cell, el, link, safeUrl, setText } from './dom.js';
import { duration, fmtAge, fmtCost, fmtSpan, fmtTime, oneLine, prLabel } from './format.js';
import { rememberRepo, updatePill } from './widgets.js';
import { showError } from './notices.js';
import { api } from './api.js';

const PAGE_SIZE = 100;

export function readFiltersFromUrl() {
  const q = new URLSearchParams(location.search);
  const status = q.get('status') || '';
  state.filters = { status: STATUSES.includes(status) ? status : '', repo: (q.get('repo') || '').trim().slice(0, 200) };
  $('f-status').value = state.filters.status;
  $('f-repo').value = state.filters.repo;
}

export function applyFilters() {
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

export async function loadTasks(gen, append) {
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
export function upsertTask(t) {
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

// Live status events carry most fields; the timestamps come with one GET per task (coalesced).
export function refreshListTask(id) {
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
