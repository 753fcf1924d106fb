// Turning API values into display text: shortened strings, times, ages, durations, costs and PR
// labels. Pure functions (apart from reading the clock), shared by every view.
import { ACTIVE } from './state.js';

export function truncate(s, n) {
  const t = String(s ?? '');
  return t.length > n ? `${t.slice(0, n)}…` : t;
}

export function oneLine(s, n) {
  return truncate(String(s ?? '').replace(/\s*\n\s*/g, ' ⏎ '), n);
}

/** An ISO time as epoch milliseconds, or null when absent or unreadable. */
export function ms(iso) {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? null : t;
}

export function fmtSpan(msec) {
  if (msec === null || msec < 0) return '—';
  const s = Math.floor(msec / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function fmtAge(iso) {
  const t = ms(iso);
  if (t === null) return '—';
  const s = Math.max(0, Math.floor((Date.now() - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400 * 2) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function fmtTime(iso) {
  const t = ms(iso);
  return t === null ? '—' : new Date(t).toLocaleString();
}

export function fmtClock(iso) {
  const t = ms(iso);
  return t === null ? '' : new Date(t).toLocaleTimeString([], { hour12: false });
}

export function fmtCost(c) {
  if (c === null || c === undefined || Number.isNaN(Number(c))) return '—';
  const n = Number(c);
  if (n === 0) return '$0';
  return `$${n < 1 ? n.toFixed(4).replace(/0+$/, '').replace(/\.$/, '') : n.toFixed(2)}`;
}

/** Time the agent has worked: start to completion, or to now while it is still active. */
export function duration(t) {
  const start = ms(t.started_at);
  if (start === null) return null;
  const end = ms(t.completed_at);
  if (end !== null) return end - start;
  if (ACTIVE.has(t.status)) return Date.now() - start;
  // In review (or ended without a completion time): the agent stopped at the last update.
  const last = ms(t.updated_at);
  return last !== null && last >= start ? last - start : null;
}

/** "PR #12" for a GitHub pull request URL of a task or workflow, else "PR". */
export function prLabel(t) {
  const m = /\/pull\/(\d+)/.exec(String(t.pr_url || ''));
  return m ? `PR #${m[1]}` : 'PR';
}
