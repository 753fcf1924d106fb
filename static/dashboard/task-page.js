// The task page (/tasks/:id): loading and re-reading one task and rendering its header, toolbar,
// details, agent runs and the clarification question. The log tail, handoffs and messages are
// their own modules; this one starts them.
import { ACTIVE, debounce, state } from './state.js';
import { $, el, link, safeUrl, setText } from './dom.js';
import { duration, fmtAge, fmtCost, fmtSpan, fmtTime, prLabel } from './format.js';
import { disarm, kvRow, longText, rememberRepo, setLink, updatePill } from './widgets.js';
import { showError, showMissing } from './notices.js';
import { api } from './api.js';
import { pollLogs, scheduleLogPoll, stopLogPolling } from './task-log.js';
import { loadHandoffs } from './task-handoffs.js';
import { loadTaskMessages } from './task-messages.js';

export async function loadTaskPage(gen, id) {
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

export function refreshTask(gen, id, alsoSide) {
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

export function renderTask(t) {
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
