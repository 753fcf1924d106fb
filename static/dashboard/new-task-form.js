// The create form (#new-panel) on the list pages: a task (optionally run at once) or a
// code_review workflow. It remembers the last repository in localStorage.
import { state } from './state.js';
import { $, link, setText } from './dom.js';
import { showError, showNotice } from './notices.js';
import { api } from './api.js';
import { upsertTask } from './task-list.js';
import { loadWorkflows } from './workflow-list.js';

const REPO_KEY = 'factory_last_repo';

export function openNewPanel() {
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

export function syncKind() {
  const wf = formKind() === 'code_review';
  $('n-agent-label').hidden = wf;
  $('n-run-label').hidden = wf;
  setText($('n-submit'), wf ? 'Start workflow' : 'Create task');
}

export async function submitNew(ev) {
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
