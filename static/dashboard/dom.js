// Building DOM nodes safely. Everything from the API (agent text above all) goes in through
// textContent or attributes set from JS, never as markup; these helpers are the one way views do it.

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

/** Sets text only when it changed, so live updates do not churn the DOM. */
export function setText(node, text) {
  const t = text === undefined || text === null ? '' : String(text);
  if (node.textContent !== t) node.textContent = t;
}

/** Only http(s) URLs become links; anything else (javascript:, data:) is shown as text. */
export function safeUrl(u) {
  if (typeof u !== 'string' || !u) return null;
  try {
    const url = new URL(u, location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/** An external link opens a new tab; an internal one is routed on the client (data-nav). */
export function link(href, text, className, external) {
  const a = el('a', className, text);
  a.href = href;
  if (external) {
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
  } else {
    a.dataset.nav = '';
  }
  return a;
}

/** A table cell with the label the phone layout shows in front of it. */
export function cell(tr, cls, label) {
  const td = el('td', cls);
  td.dataset.label = label;
  tr.append(td);
  return td;
}
