// What the page tells the user outside the views: the error and notice banners, the connection
// status in the header and the "not found" page.
import { $, setText } from './dom.js';

export function showError(text) {
  setText($('error'), text || '');
  $('error').hidden = !text;
}

let noticeTimer = null;
/** A short-lived note; `parts` are strings and nodes (links), appended as they are. */
export function showNotice(...parts) {
  const n = $('notice');
  n.replaceChildren(...parts.map((p) => (typeof p === 'string' ? document.createTextNode(p) : p)));
  n.hidden = parts.length === 0;
  clearTimeout(noticeTimer);
  if (parts.length)
    noticeTimer = setTimeout(() => {
      n.hidden = true;
    }, 15_000);
}

/** The header's connection state (connecting, live, reconnecting, auth). */
export function setStatus(s, text) {
  const e = $('status');
  e.dataset.state = s;
  setText(e, text);
}

export function showMissing(what) {
  for (const page of document.querySelectorAll('.page')) page.hidden = page.id !== 'v-missing';
  setText($('missing-text'), `${what} does not exist (or was removed).`);
}
