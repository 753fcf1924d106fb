// Fake GitHub REST v3 API: pull requests, check runs, statuses, reviews, comments, and /user auth.
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { FakeServer, field, type FakeServerOptions, type Reply, type RouteRequest } from './base.js';

export interface FakePullRequest {
  number: number;
  owner: string;
  repo: string;
  title: string;
  body: string;
  state: 'open' | 'closed';
  merged: boolean;
  merged_at: string | null;
  draft: boolean;
  head: { ref: string; sha: string; label: string };
  base: { ref: string };
  html_url: string;
  created_at: string;
  updated_at: string;
}

export interface CheckRun {
  id: number;
  name: string;
  status: 'queued' | 'in_progress' | 'completed';
  conclusion: string | null;
  output: { title: string | null; summary: string | null; text: string | null };
  html_url: string;
}

export interface FakeGitHubOptions extends FakeServerOptions {
  /** When set, every request must carry `Authorization: Bearer|token <validToken>`, else 401. */
  validToken?: string;
  login?: string;
  /** Value of the x-oauth-scopes header on GET /user (default "repo"). */
  scopes?: string;
  defaultBranch?: string;
}

type Obj = Record<string, unknown>;

/** Produces the headers + body GitHub sends for a webhook delivery. */
export function signGitHubWebhook(secret: string, event: string, payload: unknown): { headers: Record<string, string>; body: string } {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const sig = createHmac('sha256', secret).update(body).digest('hex');
  return {
    body,
    headers: {
      'Content-Type': 'application/json',
      'User-Agent': 'GitHub-Hookshot/fake',
      'X-Hub-Signature-256': `sha256=${sig}`,
      'X-GitHub-Event': event,
      'X-GitHub-Delivery': randomUUID(),
    },
  };
}
export const signWebhook = signGitHubWebhook;

const now = () => new Date().toISOString();

export class FakeGitHub extends FakeServer {
  static signWebhook = signGitHubWebhook;
  readonly pulls = new Map<number, FakePullRequest>();
  readonly checkRuns = new Map<string, CheckRun[]>();
  readonly combinedStatus = new Map<string, { state: string; statuses: unknown[] }>();
  readonly reviews = new Map<number, Obj[]>();
  readonly reviewComments = new Map<number, Obj[]>();
  readonly issueComments = new Map<number, Obj[]>();
  /** Repository permission per login (GET …/collaborators/:user/permission); unknown logins have write. */
  readonly permissions = new Map<string, string>();
  private nextPr = 1;
  private nextId = 1000;
  private readonly opts: FakeGitHubOptions;

  constructor(opts: FakeGitHubOptions = {}) {
    super(opts);
    this.opts = opts;
    const repo = '/repos/:owner/:repo';
    this.route('GET', '/user', () => ({
      json: { login: this.login, id: 1, type: 'Bot' },
      headers: { 'x-oauth-scopes': opts.scopes ?? 'repo' },
    }));
    this.route('GET', repo, (r) => ({
      json: {
        name: r.params.repo,
        full_name: `${r.params.owner}/${r.params.repo}`,
        default_branch: opts.defaultBranch ?? 'main',
        private: true,
        owner: { login: r.params.owner },
      },
    }));
    this.route('POST', `${repo}/pulls`, (r) => this.createPull(r));
    this.route('GET', `${repo}/pulls`, (r) => ({ json: this.listPulls(r).map((p) => this.prJson(p)) }));
    this.route('GET', `${repo}/pulls/:n`, (r) => this.withPr(r, (p) => ({ json: this.prJson(p) })));
    this.route('PATCH', `${repo}/pulls/:n`, (r) =>
      this.withPr(r, (p) => {
        for (const k of ['title', 'body'] as const) {
          const v = field(r.json, k);
          if (typeof v === 'string') p[k] = v;
        }
        const state = field(r.json, 'state');
        if (state === 'open' || state === 'closed') p.state = state;
        const base = field(r.json, 'base');
        if (typeof base === 'string') p.base.ref = base;
        p.updated_at = now();
        return { json: this.prJson(p) };
      }),
    );
    this.route('PUT', `${repo}/pulls/:n/merge`, (r) =>
      this.withPr(r, (p) => {
        if (p.state !== 'open') return { status: 405, json: { message: 'Pull Request is not mergeable' } };
        this.setPrState(p.number, 'closed', true);
        return { json: { sha: p.head.sha, merged: true, message: 'Pull Request successfully merged' } };
      }),
    );
    this.route('GET', `${repo}/pulls/:n/reviews`, (r) => ({ json: this.reviews.get(Number(r.params.n)) ?? [] }));
    this.route('GET', `${repo}/pulls/:n/comments`, (r) => ({ json: this.reviewComments.get(Number(r.params.n)) ?? [] }));
    this.route('GET', `${repo}/collaborators/:user/permission`, (r) => ({
      json: { permission: this.permissions.get(r.params.user!) ?? 'write', user: { login: r.params.user } },
    }));
    this.route('GET', `${repo}/issues/:n/comments`, (r) => ({ json: this.issueComments.get(Number(r.params.n)) ?? [] }));
    this.route('POST', `${repo}/issues/:n/comments`, (r) => {
      const body = field(r.json, 'body');
      if (typeof body !== 'string') return this.invalid('body is required');
      const n = Number(r.params.n);
      const c = this.addIssueComment(n, { body, user: { login: this.login } }, `${r.params.owner}/${r.params.repo}`);
      return { status: 201, json: c };
    });
    this.route('GET', `${repo}/commits/:sha/check-runs`, (r) => {
      const runs = this.checkRuns.get(r.params.sha ?? '') ?? [];
      return { json: { total_count: runs.length, check_runs: runs } };
    });
    this.route('GET', `${repo}/commits/:sha/status`, (r) => {
      const s = this.combinedStatus.get(r.params.sha ?? '') ?? { state: 'pending', statuses: [] };
      return { json: { sha: r.params.sha, state: s.state, statuses: s.statuses, total_count: s.statuses.length } };
    });
  }

  get login(): string {
    return this.opts.login ?? 'factory-bot';
  }

  protected override guard(req: RouteRequest): Reply | undefined {
    if (!this.opts.validToken) return undefined;
    const m = /^(?:bearer|token)\s+(\S+)$/i.exec(String(req.headers.authorization ?? '').trim());
    if (m && m[1] === this.opts.validToken) return undefined;
    return { status: 401, json: { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' } };
  }

  protected override notFoundBody(): unknown {
    return { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' };
  }

  // ------------------------------------------------------------ test controls
  setPrState(n: number, state: 'open' | 'closed', merged = false): void {
    const p = this.mustPr(n);
    p.state = state;
    p.merged = merged;
    p.merged_at = merged ? now() : null;
    p.updated_at = now();
  }

  setHeadSha(n: number, sha: string): void {
    this.mustPr(n).head.sha = sha;
  }

  setCheckRuns(sha: string, runs: Array<Partial<CheckRun> & { name: string }>): void {
    this.checkRuns.set(
      sha,
      runs.map((r) => {
        const id = r.id ?? this.nextId++;
        return {
          id,
          name: r.name,
          status: r.status ?? 'completed',
          conclusion: r.conclusion === undefined ? ((r.status ?? 'completed') === 'completed' ? 'success' : null) : r.conclusion,
          output: { title: null, summary: null, text: null, ...(r.output ?? {}) },
          html_url: r.html_url ?? `https://github.example/checks/${id}`,
        };
      }),
    );
  }

  setCombinedStatus(sha: string, state: string, statuses: unknown[] = []): void {
    this.combinedStatus.set(sha, { state, statuses });
  }

  addReview(n: number, review: Obj): Obj {
    const r = { id: this.nextId++, user: { login: 'reviewer' }, state: 'COMMENTED', body: '', submitted_at: now(), ...review };
    this.push(this.reviews, n, r);
    return r;
  }

  addReviewComment(n: number, comment: Obj): Obj {
    const c = { id: this.nextId++, user: { login: 'reviewer' }, created_at: now(), ...comment };
    this.push(this.reviewComments, n, c);
    return c;
  }

  addIssueComment(n: number, comment: Obj, fullName = 'owner/repo'): Obj {
    const id = (comment.id as number | undefined) ?? this.nextId++;
    const c = {
      id,
      user: { login: 'someone' },
      created_at: now(),
      updated_at: now(),
      html_url: `https://github.example/${fullName}/pull/${n}#issuecomment-${id}`,
      ...comment,
    };
    this.push(this.issueComments, n, c);
    return c;
  }

  /** The PR whose head branch is `branch` (most recent first), if any. */
  prForBranch(branch: string): FakePullRequest | undefined {
    return [...this.pulls.values()].reverse().find((p) => p.head.ref === branch);
  }

  // ------------------------------------------------------------ internals
  private push(map: Map<number, Obj[]>, n: number, item: Obj): void {
    const list = map.get(n) ?? [];
    list.push(item);
    map.set(n, list);
  }

  private mustPr(n: number): FakePullRequest {
    const p = this.pulls.get(n);
    if (!p) throw new Error(`FakeGitHub: no pull request #${n}`);
    return p;
  }

  private invalid(message: string): Reply {
    return { status: 422, json: { message: 'Validation Failed', errors: [{ message }] } };
  }

  private withPr(r: RouteRequest, fn: (p: FakePullRequest) => Reply): Reply {
    const p = this.pulls.get(Number(r.params.n));
    if (!p || p.owner !== r.params.owner || p.repo !== r.params.repo) return { status: 404, json: this.notFoundBody() };
    return fn(p);
  }

  private createPull(r: RouteRequest): Reply {
    const owner = r.params.owner ?? '';
    const repo = r.params.repo ?? '';
    const title = field(r.json, 'title');
    const headRaw = field(r.json, 'head');
    const base = field(r.json, 'base');
    if (typeof title !== 'string' || typeof headRaw !== 'string' || typeof base !== 'string') {
      return this.invalid('title, head and base are required');
    }
    const ref = headRaw.includes(':') ? headRaw.slice(headRaw.indexOf(':') + 1) : headRaw;
    const dup = [...this.pulls.values()].find((p) => p.owner === owner && p.repo === repo && p.state === 'open' && p.head.ref === ref);
    if (dup) return this.invalid(`A pull request already exists for ${owner}:${ref}.`);
    const number = this.nextPr++;
    const body = field(r.json, 'body');
    const pr: FakePullRequest = {
      number,
      owner,
      repo,
      title,
      body: typeof body === 'string' ? body : '',
      state: 'open',
      merged: false,
      merged_at: null,
      draft: field(r.json, 'draft') === true,
      head: { ref, label: `${owner}:${ref}`, sha: createHash('sha1').update(`${owner}/${repo}:${ref}:${number}`).digest('hex') },
      base: { ref: base },
      html_url: `https://github.example/${owner}/${repo}/pull/${number}`,
      created_at: now(),
      updated_at: now(),
    };
    this.pulls.set(number, pr);
    return { status: 201, json: this.prJson(pr) };
  }

  private listPulls(r: RouteRequest): FakePullRequest[] {
    const q = (k: string) => {
      const v = r.query[k];
      return Array.isArray(v) ? v[0] : v;
    };
    const state = q('state') ?? 'open';
    const head = q('head');
    const base = q('base');
    return [...this.pulls.values()].filter((p) => {
      if (p.owner !== r.params.owner || p.repo !== r.params.repo) return false;
      if (state !== 'all' && p.state !== state) return false;
      if (base && p.base.ref !== base) return false;
      if (head) {
        const [hOwner, hRef] = head.includes(':') ? head.split(/:(.*)/s) : [undefined, head];
        if (p.head.ref !== hRef || (hOwner !== undefined && hOwner !== p.owner)) return false;
      }
      return true;
    });
  }

  private prJson(p: FakePullRequest): Obj {
    return {
      id: 100000 + p.number,
      number: p.number,
      title: p.title,
      body: p.body,
      state: p.state,
      merged: p.merged,
      merged_at: p.merged_at,
      draft: p.draft,
      mergeable: p.state === 'open' ? true : null,
      mergeable_state: 'clean',
      html_url: p.html_url,
      url: `${this.url}/repos/${p.owner}/${p.repo}/pulls/${p.number}`,
      head: { ...p.head, repo: { full_name: `${p.owner}/${p.repo}` } },
      base: { ...p.base, repo: { full_name: `${p.owner}/${p.repo}` } },
      user: { login: this.login },
      created_at: p.created_at,
      updated_at: p.updated_at,
    };
  }
}
