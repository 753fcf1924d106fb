// Small pieces of UI the views share: status pills, key/value rows, folded long text, optional
// links, the two-step (arm, then confirm) buttons and the datalist of known repositories.
import { STATUSES, state } from './state.js';
import { $, el, safeUrl, setText } from './dom.js';
import { oneLine } from './format.js';

export function statusPill(status, className = 'pill') {
  const known = STATUSES.includes(status) || ['pending', 'running', 'completed', 'skipped'].includes(status);
  const p = el('span', `${className} st-${known ? status : 'other'}`, status || '—');
  return p;
}

export function updatePill(node, status) {
  const known = STATUSES.includes(status) || ['pending', 'running', 'completed', 'skipped'].includes(status);
  const cls = `pill st-${known ? status : 'other'}`;
  if (node.className !== cls) node.className = cls;
  setText(node, status || '—');
}

export function kvRow(dl, key, label, value) {
  const dt = el('dt', '', label);
  const dd = el('dd');
  dd.dataset.key = key;
  if (value instanceof Node) dd.append(value);
  else dd.textContent = value === null || value === undefined || value === '' ? '—' : String(value);
  dl.append(dt, dd);
  return dd;
}

/** Short text as is; long text (a raw transcript, say) folded behind its first line. */
export function longText(text, max) {
  const s = String(text);
  if (s.length <= max) return el('span', 'pre', s);
  const d = el('details', 'long');
  d.append(el('summary', '', oneLine(s, 120)), el('pre', 'long-body', s));
  return d;
}

export function setLink(a, url, text) {
  const safe = safeUrl(url);
  if (safe) {
    a.href = safe;
    setText(a, text);
  }
  a.hidden = !safe;
}

// Two-step buttons: the first click arms, the second acts (no confirm() dialogs).
export function disarm(btn, label) {
  clearTimeout(btn._armTimer);
  delete btn.dataset.armed;
  btn.disabled = false;
  setText(btn, label);
}

export function armOrRun(btn, label, confirmLabel, action) {
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

/** Offers every repository seen so far in the repository fields (#repo-list). */
export function rememberRepo(repo) {
  if (!repo || state.repos.has(repo)) return;
  state.repos.add(repo);
  const opt = document.createElement('option');
  opt.value = repo;
  $('repo-list').append(opt);
}
