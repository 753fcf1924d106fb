// Plane REST API v1 (work items, states, comments). Calls go through the outbox, never inline.
import { DeliveryError } from './outbox.js';
import { scrub, scrubDeep } from '../secrets.js';
import { escapeHtml as escapeAttr } from './html.js';

export interface PlaneConfig {
  baseUrl: string;
  apiKey: string;
  workspace: string;
  projectId: string;
}
export interface PlaneComment {
  id: string;
  comment_html: string;
  created_at: string;
  actor?: string;
  created_by?: string;
}

export class PlaneClient {
  constructor(
    private readonly c: PlaneConfig,
    private readonly timeoutMs = 20_000,
  ) {}

  get enabled(): boolean {
    return Boolean(this.c.baseUrl && this.c.apiKey && this.c.workspace && this.c.projectId);
  }

  private url(p: string): string {
    return `${this.c.baseUrl.replace(/\/+$/, '')}/api/v1/workspaces/${encodeURIComponent(this.c.workspace)}/projects/${encodeURIComponent(this.c.projectId)}${p}`;
  }

  private async call<T>(method: string, p: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.url(p), {
        method,
        headers: { 'x-api-key': this.c.apiKey, accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(scrubDeep(body)) : undefined,
        signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]) : AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new DeliveryError(`Plane ${method} ${p}: ${scrub((err as Error).message)}`, { cause: err });
    }
    const text = await res.text();
    if (!res.ok) {
      const retryAfter = Number(res.headers.get('retry-after'));
      const reset = Number(res.headers.get('x-ratelimit-reset'));
      const retryAfterMs =
        res.status === 429
          ? retryAfter > 0
            ? retryAfter * 1000
            : reset > 0
              ? Math.max(1000, reset * 1000 - Date.now())
              : 60_000
          : undefined;
      throw new DeliveryError(scrub(`Plane ${method} ${p} failed with ${res.status}: ${text.slice(0, 200)}`), {
        status: res.status,
        retryAfterMs,
        permanent: res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429,
      });
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }

  createIssue(i: { name: string; description_html: string; state?: string; external_id: string }, signal?: AbortSignal) {
    return this.call<{ id: string; sequence_id?: number }>(
      'POST',
      '/work-items/',
      {
        name: i.name,
        description_html: i.description_html,
        ...(i.state ? { state: i.state } : {}),
        external_id: i.external_id,
        external_source: 'factory',
      },
      signal,
    );
  }

  setState(issueId: string, state: string, signal?: AbortSignal) {
    return this.call('PATCH', `/work-items/${encodeURIComponent(issueId)}/`, { state }, signal);
  }

  comment(issueId: string, html: string, signal?: AbortSignal) {
    return this.call<PlaneComment>('POST', `/work-items/${encodeURIComponent(issueId)}/comments/`, { comment_html: html }, signal);
  }

  async listLabels(signal?: AbortSignal): Promise<Array<{ id: string; name: string }>> {
    const r = await this.call<{ results?: Array<{ id: string; name: string }> } | Array<{ id: string; name: string }>>(
      'GET',
      '/labels/?per_page=100',
      undefined,
      signal,
    );
    return Array.isArray(r) ? r : (r.results ?? []);
  }

  async listComments(issueId: string, signal?: AbortSignal): Promise<PlaneComment[]> {
    const r = await this.call<{ results?: PlaneComment[] } | PlaneComment[]>(
      'GET',
      `/work-items/${encodeURIComponent(issueId)}/comments/?per_page=100`,
      undefined,
      signal,
    );
    return Array.isArray(r) ? r : (r.results ?? []);
  }
}

/** Plane comments put task text into HTML, attributes included. */
export const escapeHtml = (text: string): string => escapeAttr(text, true);
