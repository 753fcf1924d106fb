// The few GitHub REST calls Factory makes. Base URL from config so tests use a loopback fake.
import { scrub, scrubDeep } from '../secrets.js';
import { DEFAULT_RETRY, networkRetryDelay, retryDelay, type RetryPolicy } from './github-retry.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** GitHub's error text: its message and the messages of its `errors`. */
function errorMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { message?: string; errors?: Array<{ message?: string }> };
    return [j.message, ...(j.errors ?? []).map((e) => e.message)].filter(Boolean).join(': ');
  } catch {
    return text.slice(0, 300);
  }
}

export class GitHubError extends Error {
  override name = 'GitHubError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** No answer, 5xx, 429 or a rate-limit 403: GitHub may well say yes later. Anything else is its answer. */
export function isTransientGitHubError(err: unknown): boolean {
  if (!(err instanceof GitHubError)) return false;
  return err.status === 0 || err.status >= 500 || err.status === 429 || (err.status === 403 && /rate limit/i.test(err.message));
}

export interface PullRequest {
  number: number;
  html_url: string;
  state: string;
  merged?: boolean;
  head: { ref: string; sha: string };
  base?: { ref: string };
}

export interface GitHubClientOptions {
  /** Per attempt. */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
}

export class GitHubClient {
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;

  constructor(
    private readonly apiUrl: string,
    private readonly token: string,
    opts: GitHubClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
  }

  get enabled(): boolean {
    return this.token.length > 0;
  }

  /**
   * One REST call with retries (see github-retry.ts). `safeToRepeat`: GET and friends always; a POST
   * only when repeating it cannot do harm (opening a PR: a second one is refused with 422).
   */
  async request<T>(method: string, path: string, body?: unknown, safeToRepeat = method !== 'POST'): Promise<T> {
    // PR titles, bodies and comments carry agent text: nothing secret leaves for GitHub.
    const payload = body ? JSON.stringify(scrubDeep(body)) : undefined;
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      let text: string;
      try {
        res = await this.attempt(method, path, payload);
        text = await res.text();
      } catch (err) {
        const wait = networkRetryDelay(attempt, safeToRepeat, this.retry);
        if (wait === undefined) throw new GitHubError(scrub(`GitHub ${method} ${path}: no answer (${(err as Error).message})`), 0);
        await sleep(wait);
        continue;
      }
      if (res.ok) return (text ? JSON.parse(text) : undefined) as T;
      const wait = retryDelay({ status: res.status, headers: res.headers, body: text }, attempt, safeToRepeat, this.retry);
      if (wait === undefined)
        throw new GitHubError(scrub(`GitHub ${method} ${path} failed with ${res.status}: ${errorMessage(text)}`), res.status);
      await sleep(wait);
    }
  }

  private attempt(method: string, path: string, payload: string | undefined): Promise<Response> {
    return fetch(`${this.apiUrl.replace(/\/+$/, '')}${path}`, {
      method,
      headers: {
        accept: 'application/vnd.github+json',
        'x-github-api-version': '2022-11-28',
        'user-agent': 'factory-orchestrator',
        authorization: `Bearer ${this.token}`,
        ...(payload ? { 'content-type': 'application/json' } : {}),
      },
      body: payload,
      signal: AbortSignal.timeout(this.timeoutMs),
    });
  }

  /** Opens a PR, or returns the open one that already exists for the branch. */
  async openPullRequest(o: { owner: string; repo: string; title: string; body: string; head: string; base: string }): Promise<PullRequest> {
    try {
      // Idempotent: an open PR for the branch (say from an attempt whose answer was lost) is reused.
      const open = await this.findOpenPullRequest(o.owner, o.repo, o.head);
      if (open) return open;
      return await this.request<PullRequest>(
        'POST',
        `/repos/${o.owner}/${o.repo}/pulls`,
        {
          title: o.title,
          body: o.body,
          head: o.head,
          base: o.base,
        },
        true,
      );
    } catch (err) {
      if (err instanceof GitHubError && err.status === 422) {
        const existing = await this.findOpenPullRequest(o.owner, o.repo, o.head);
        if (existing) return existing;
      }
      throw err;
    }
  }

  async findOpenPullRequest(owner: string, repo: string, branch: string): Promise<PullRequest | undefined> {
    const list = await this.request<PullRequest[]>(
      'GET',
      `/repos/${owner}/${repo}/pulls?state=open&head=${encodeURIComponent(`${owner}:${branch}`)}`,
    );
    return list[0];
  }

  async getPullRequest(owner: string, repo: string, n: number): Promise<PullRequest> {
    return this.request<PullRequest>('GET', `/repos/${owner}/${repo}/pulls/${n}`);
  }

  async updatePullRequest(owner: string, repo: string, n: number, patch: { title?: string; body?: string }): Promise<void> {
    await this.request('PATCH', `/repos/${owner}/${repo}/pulls/${n}`, patch);
  }

  async checkRuns(
    owner: string,
    repo: string,
    sha: string,
  ): Promise<
    Array<{
      name: string;
      status: string;
      conclusion: string | null;
      output?: { title?: string | null; summary?: string | null; text?: string | null };
      html_url?: string;
    }>
  > {
    const r = await this.request<{ check_runs?: [] }>(
      'GET',
      `/repos/${owner}/${repo}/commits/${encodeURIComponent(sha)}/check-runs?per_page=100`,
    );
    return r.check_runs ?? [];
  }

  async statuses(
    owner: string,
    repo: string,
    sha: string,
  ): Promise<Array<{ context: string; state: string; description?: string | null; target_url?: string | null }>> {
    const r = await this.request<{ statuses?: [] }>('GET', `/repos/${owner}/${repo}/commits/${encodeURIComponent(sha)}/status`);
    return r.statuses ?? [];
  }

  reviews(owner: string, repo: string, n: number) {
    return this.request<Array<{ id: number; user?: { login?: string }; state?: string; body?: string | null }>>(
      'GET',
      `/repos/${owner}/${repo}/pulls/${n}/reviews?per_page=100`,
    );
  }

  reviewComments(owner: string, repo: string, n: number) {
    return this.request<
      Array<{
        id: number;
        user?: { login?: string };
        body?: string;
        path?: string;
        line?: number | null;
        pull_request_review_id?: number | null;
      }>
    >('GET', `/repos/${owner}/${repo}/pulls/${n}/comments?per_page=100`);
  }

  issueComments(owner: string, repo: string, n: number) {
    return this.request<Array<{ id: number; user?: { login?: string }; body?: string }>>(
      'GET',
      `/repos/${owner}/${repo}/issues/${n}/comments?per_page=100`,
    );
  }

  /** The user's permission on the repository: admin, maintain, write, triage, read or none. */
  async permission(owner: string, repo: string, user: string): Promise<string> {
    try {
      const r = await this.request<{ permission?: string; role_name?: string }>(
        'GET',
        `/repos/${owner}/${repo}/collaborators/${encodeURIComponent(user)}/permission`,
      );
      return r.role_name || r.permission || 'none';
    } catch (err) {
      if (err instanceof GitHubError && err.status === 404) return 'none';
      throw err;
    }
  }

  async comment(owner: string, repo: string, n: number, body: string): Promise<void> {
    await this.request('POST', `/repos/${owner}/${repo}/issues/${n}/comments`, { body });
  }
}
