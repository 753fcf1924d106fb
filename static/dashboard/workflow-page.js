// The workflow page (/workflows/:id): the workflow with its steps, and a timeline of every task it
// ran, grouped by iteration, with the reviewers' verdicts and the handoff summaries; plus cancel.
import { ACTIVE, debounce, state } from './state.js';
import { $, el, link, safeUrl, setText } from './dom.js';
import { duration, fmtAge, fmtCost, fmtSpan, fmtTime, ms, oneLine, prLabel, truncate } from './format.js';
import { disarm, kvRow, rememberRepo, setLink, statusPill, updatePill } from './widgets.js';
import { showError, showMissing, showNotice } from './notices.js';
import { api } from './api.js';
import { reviewBlock, reviewFromText } from './workflow-review.js';

export async function loadWorkflowPage(gen, id) {
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

export function refreshWorkflow() {
  const gen = state.gen;
  const id = state.route.id;
  debounce(`workflow-${id}`, () => loadWorkflowPage(gen, id), 200);
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

export async function cancelWorkflow() {
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
