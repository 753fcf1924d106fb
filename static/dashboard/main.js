// Entry module of the Factory dashboard (loaded by dashboard.html as <script type="module">):
// wires the page's buttons, forms and links to the views, keeps ages and durations ticking, then
// shows the page for the current URL and opens the live stream. Plain ES modules, no build step;
// each view lives in its own file next to this one.
import { ACTIVE, state } from './state.js';
import { $, setText } from './dom.js';
import { duration, fmtAge, fmtSpan } from './format.js';
import { armOrRun } from './widgets.js';
import { navigate, route } from './router.js';
import { applyFilters, loadTasks } from './task-list.js';
import { refreshTask } from './task-page.js';
import { cancelTask, runTask, sendAnswer } from './task-actions.js';
import { setTaskRefresh } from './task-log.js';
import { cancelWorkflow } from './workflow-page.js';
import { openNewPanel, submitNew, syncKind } from './new-task-form.js';
import { connect } from './live.js';

/** Every 5 s: the ages and durations of the shown rows, and the running task's duration. */
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

function init() {
  setTaskRefresh(refreshTask); // the log tail re-reads the task when no live stream does
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
