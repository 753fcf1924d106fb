// A reviewer's verdict on a workflow page: read from the fenced json block of its handoff (earlier
// iterations keep only that) and drawn as approved / changes requested with issue counts.
import { el } from './dom.js';

const SEVERITIES = ['blocker', 'major', 'minor', 'nit'];

/** Reads a reviewer's fenced json verdict from a handoff (earlier iterations keep only that). */
export function reviewFromText(text) {
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

export function reviewBlock(review) {
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
