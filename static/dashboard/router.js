// Client-side routing (history API): which page a path shows, switching pages on navigation, and
// (re)loading the shown view. The server sends the same HTML for every path in DASHBOARD_PATHS.
import { state } from './state.js';
import { $, setText } from './dom.js';
import { showError } from './notices.js';
import { loadTasks, readFiltersFromUrl } from './task-list.js';
import { loadWorkflows } from './workflow-list.js';
import { loadTaskPage } from './task-page.js';
import { stopLogPolling } from './task-log.js';
import { loadWorkflowPage } from './workflow-page.js';
import { openNewPanel } from './new-task-form.js';

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

export function navigate(href) {
  history.pushState(null, '', href);
  route();
  window.scrollTo(0, 0);
}

export function route() {
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

export function loadView() {
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
