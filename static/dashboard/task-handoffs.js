// The task page's handoffs panel: what the task received from earlier workflow steps and what it
// produced for later ones, as cards. Without the workflow routes (404) the panel just stays empty.
import { state } from './state.js';
import { $, el, link } from './dom.js';
import { fmtTime } from './format.js';
import { showError } from './notices.js';
import { api } from './api.js';

export async function loadHandoffs(gen, id) {
  try {
    const [from, to] = await Promise.all([api(`/api/tasks/${id}/handoffs?direction=from`), api(`/api/tasks/${id}/handoffs?direction=to`)]);
    if (gen !== state.gen) return;
    const seen = new Set();
    const rows = [...to.map((h) => ({ h, dir: 'received' })), ...from.map((h) => ({ h, dir: 'produced' }))]
      .filter(({ h }) => (seen.has(h.id) ? false : (seen.add(h.id), true)))
      .sort((a, b) => a.h.id - b.h.id);
    $('t-handoffs').replaceChildren(...rows.map(({ h, dir }) => handoffCard(h, dir)));
    $('t-handoffs-empty').hidden = rows.length > 0;
  } catch (err) {
    if (err.status === 404) {
      // The workflow routes are not installed: no handoffs to show.
      $('t-handoffs-empty').hidden = false;
      return;
    }
    if (gen === state.gen) showError(`Could not load handoffs: ${err.message}`);
  }
}

function handoffCard(h, dir) {
  const li = el('li', `card handoff ${dir}`);
  li.dataset.id = String(h.id);
  const meta = el('div', 'meta');
  meta.append(el('span', 'badge', dir));
  meta.append(link(`/tasks/${Number(h.from_task_id)}`, `#${h.from_task_id}`));
  meta.append(el('span', 'muted', '→'));
  meta.append(h.to_task_id ? link(`/tasks/${Number(h.to_task_id)}`, `#${h.to_task_id}`) : el('span', 'muted', 'next step'));
  meta.append(el('span', 'muted', h.output_type));
  const time = el('time', 'muted', fmtTime(h.created_at));
  time.dateTime = h.created_at || '';
  meta.append(time);
  li.append(meta, el('p', 'body', h.summary || '(no summary)'));
  if (h.content) {
    const d = el('details');
    d.append(el('summary', '', 'Details'), el('pre', 'content', h.content));
    li.append(d);
  }
  return li;
}
