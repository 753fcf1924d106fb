// The workflow list (/workflows): loaded whole (the newest 100) and re-read, debounced, when live
// events say a workflow or one of its tasks changed; rows that stay are reused.
import { state } from './state.js';
import { $, cell, el, link, safeUrl, setText } from './dom.js';
import { fmtAge, fmtCost, fmtTime, prLabel } from './format.js';
import { rememberRepo, updatePill } from './widgets.js';
import { showError } from './notices.js';
import { api } from './api.js';

export async function loadWorkflows(gen) {
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
