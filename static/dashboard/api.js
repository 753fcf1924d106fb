// Talking to the JSON API: request headers with the Bearer token, the token form on 401 (shared
// form logic in ../auth.js) and errors that carry the HTTP status.
import { askToken as askTokenOnce } from '../auth.js';
import { state } from './state.js';
import { setStatus } from './notices.js';

// Asks for the token (shared form logic in auth.js) and keeps it for the requests of this page.
export async function askToken(rejected) {
  state.token = await askTokenOnce(rejected, () => setStatus('auth', 'token needed'));
  if (!state.live) setStatus('connecting', 'connecting…');
}

export function headers(extra = {}) {
  const h = { Accept: 'application/json', ...extra };
  if (state.token) h.Authorization = `Bearer ${state.token}`;
  return h;
}

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export async function api(path, opts = {}) {
  for (;;) {
    const init = {
      method: opts.method || 'GET',
      cache: 'no-store',
      headers: headers(opts.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
    };
    if (opts.body !== undefined) init.body = JSON.stringify(opts.body);
    const res = await fetch(path, init);
    if (res.status === 401) {
      await askToken(Boolean(state.token));
      continue;
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError((body && (body.detail || body.error?.message)) || `HTTP ${res.status}`, res.status);
    return body;
  }
}
