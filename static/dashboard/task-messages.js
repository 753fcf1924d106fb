// The task page's messages panel: the message board entries about this task, loaded once and then
// added one by one from live events, kept in id order and never shown twice.
import { state } from './state.js';
import { $, el } from './dom.js';
import { fmtTime } from './format.js';
import { showError } from './notices.js';
import { api } from './api.js';

export async function loadTaskMessages(gen, id) {
  try {
    const rows = await api(`/api/messages?task_id=${id}&limit=200`);
    if (gen !== state.gen) return;
    rows.sort((a, b) => a.id - b.id);
    for (const m of rows) addTaskMessage(m);
    $('t-messages-empty').hidden = state.messageIds.size > 0;
  } catch (err) {
    if (err.status === 404) {
      $('t-messages-empty').hidden = false;
      return;
    }
    if (gen === state.gen) showError(`Could not load messages: ${err.message}`);
  }
}

export function addTaskMessage(m) {
  if (state.messageIds.has(m.id)) return;
  state.messageIds.add(m.id);
  const type = ['info', 'question', 'handoff', 'status', 'error'].includes(m.message_type) ? m.message_type : 'info';
  const li = el('li', `card msg-card type-${type}`);
  li.dataset.id = String(m.id);
  const meta = el('div', 'meta');
  meta.append(
    el('span', 'badge', m.message_type),
    el('span', 'who', m.sender),
    el('span', 'muted', m.recipient ? `→ ${m.recipient}` : '→ everyone'),
  );
  const time = el('time', 'muted', fmtTime(m.created_at));
  time.dateTime = m.created_at || '';
  meta.append(time);
  li.append(meta, el('p', 'body', m.message));
  const list = $('t-messages');
  let before = null;
  for (const child of list.children) {
    if (Number(child.dataset.id) > m.id) {
      before = child;
      break;
    }
  }
  list.insertBefore(li, before);
  $('t-messages-empty').hidden = true;
}
