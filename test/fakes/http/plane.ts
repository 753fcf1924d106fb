// Fake Plane (plane.so) REST API v1 + webhook payload builders/signing.
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { FakeServer, field, type FakeServerOptions, type Reply, type RouteRequest } from './base.js';

export interface PlaneState {
  id: string;
  name: string;
  group: string;
  color: string;
  sequence: number;
}
export interface PlaneLabel {
  id: string;
  name: string;
  color: string;
}

export interface PlaneIssue {
  id: string;
  sequence_id: number;
  name: string;
  description_html: string;
  state: string;
  labels: string[];
  priority: string;
  project: string;
  workspace: string;
  created_at: string;
  updated_at: string;
  [extra: string]: unknown;
}

export interface PlaneComment {
  id: string;
  comment_html: string;
  issue: string;
  actor: string;
  actor_detail: { id: string; display_name: string };
  project: string;
  workspace: string;
  created_at: string;
  updated_at: string;
}

export interface FakePlaneOptions extends FakeServerOptions {
  /** Required X-API-Key value; when unset any non-empty key is accepted (a missing key is always 401). */
  apiKey?: string;
  /** Actor id stamped on comments created through the API (default 'bot-user'). */
  botUserId?: string;
  /** State names+groups (default Backlog/Todo/In Progress/In Review/Done/Cancelled). Ids come from planeStateId(name). */
  states?: Array<{ name: string; group: string }>;
  labels?: string[];
  projectId?: string;
  workspaceId?: string;
}

const DEFAULT_STATES = [
  { name: 'Backlog', group: 'backlog' },
  { name: 'Todo', group: 'unstarted' },
  { name: 'In Progress', group: 'started' },
  { name: 'In Review', group: 'started' },
  { name: 'Done', group: 'completed' },
  { name: 'Cancelled', group: 'cancelled' },
];

/** Deterministic UUID-shaped id from a string (so tests and builders agree on state/label ids). */
export function stableUuid(kind: string, name: string): string {
  const h = createHash('sha1').update(`${kind}:${name.toLowerCase()}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
export const planeStateId = (name: string): string => stableUuid('state', name);
export const planeLabelId = (name: string): string => stableUuid('label', name);

function groupFor(stateName: string): string {
  return DEFAULT_STATES.find((s) => s.name.toLowerCase() === stateName.toLowerCase())?.group ?? 'started';
}

/** Headers + body Plane sends for a webhook delivery (HMAC-SHA256 hex of the exact body). */
export function signPlaneWebhook(secret: string, payload: unknown): { headers: Record<string, string>; body: string } {
  const body = JSON.stringify(payload);
  const event = String(field(payload, 'event') ?? '');
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'x-plane-event': event,
      'x-plane-delivery': randomUUID(),
      'x-plane-signature': createHmac('sha256', secret).update(body).digest('hex'),
    },
  };
}
export const signWebhook = signPlaneWebhook;

export interface IssueEventInput {
  id?: string;
  name?: string;
  description_html?: string;
  sequence_id?: number;
  stateId?: string;
  stateName?: string;
  stateGroup?: string;
  labels?: string[];
  action?: string;
  field?: string;
  oldValue?: unknown;
  newValue?: unknown;
  actorId?: string;
  projectId?: string;
  workspaceId?: string;
}

export function issueEvent(i: IssueEventInput = {}): Record<string, unknown> {
  const stateName = i.stateName ?? 'Todo';
  const stateId = i.stateId ?? planeStateId(stateName);
  const fieldName = i.field ?? 'state_id';
  const workspace = i.workspaceId ?? 'workspace-1';
  return {
    event: 'issue',
    action: i.action ?? 'updated',
    webhook_id: randomUUID(),
    workspace_id: workspace,
    data: {
      id: i.id ?? randomUUID(),
      name: i.name ?? 'Fake work item',
      description_html: i.description_html ?? '<p>Do the thing</p>',
      sequence_id: i.sequence_id ?? 1,
      updated_at: new Date().toISOString(),
      project: i.projectId ?? 'project-1',
      workspace,
      state: { id: stateId, name: stateName, group: i.stateGroup ?? groupFor(stateName) },
      labels: (i.labels ?? []).map((name) => ({ id: planeLabelId(name), name })),
    },
    activity: {
      field: fieldName,
      old_value: i.oldValue ?? null,
      new_value: i.newValue ?? (fieldName === 'state_id' ? stateId : null),
      actor: { id: i.actorId ?? 'human-1' },
    },
  };
}

export function commentEvent(c: {
  issueId: string;
  comment_html: string;
  actor?: string;
  id?: string;
  projectId?: string;
  workspaceId?: string;
}): Record<string, unknown> {
  const actor = c.actor ?? 'human-1';
  const workspace = c.workspaceId ?? 'workspace-1';
  return {
    event: 'issue_comment',
    action: 'created',
    webhook_id: randomUUID(),
    workspace_id: workspace,
    data: {
      id: c.id ?? randomUUID(),
      comment_html: c.comment_html,
      issue: c.issueId,
      actor,
      project: c.projectId ?? 'project-1',
      workspace,
      created_at: new Date().toISOString(),
    },
    activity: { field: 'comment', old_value: null, new_value: c.comment_html, actor: { id: actor } },
  };
}

export class FakePlane extends FakeServer {
  static signWebhook = signPlaneWebhook;
  static issueEvent = issueEvent;
  static commentEvent = commentEvent;
  readonly issues = new Map<string, PlaneIssue>();
  readonly states: PlaneState[];
  readonly labels: PlaneLabel[];
  private readonly commentStore = new Map<string, PlaneComment[]>();
  private readonly history = new Map<string, string[]>();
  private nextSeq = 1;
  private lastTs = 0;
  private readonly opts: FakePlaneOptions;

  constructor(opts: FakePlaneOptions = {}) {
    super(opts);
    this.opts = opts;
    this.states = (opts.states ?? DEFAULT_STATES).map((s, i) => ({
      id: planeStateId(s.name),
      name: s.name,
      group: s.group,
      color: '#888888',
      sequence: (i + 1) * 1000,
    }));
    this.labels = (opts.labels ?? ['factory', 'bug', 'feature']).map((name) => ({ id: planeLabelId(name), name, color: '#123456' }));
    const base = '/api/v1/workspaces/:slug/projects/:project';
    for (const items of ['work-items', 'issues']) {
      this.route('POST', `${base}/${items}/`, (r) => this.createIssue(r));
      this.route('GET', `${base}/${items}/`, () => ({ json: this.page([...this.issues.values()].reverse()) }));
      this.route('GET', `${base}/${items}/:id/`, (r) => this.withIssue(r, (i) => ({ json: i })));
      this.route('PATCH', `${base}/${items}/:id/`, (r) => this.withIssue(r, (i) => this.patchIssue(i, r)));
      this.route('GET', `${base}/${items}/:id/comments/`, (r) =>
        this.withIssue(r, (i) => ({ json: this.page([...this.comments(i.id)].reverse()) })),
      );
      this.route('POST', `${base}/${items}/:id/comments/`, (r) =>
        this.withIssue(r, (i) => {
          const html = field(r.json, 'comment_html');
          if (typeof html !== 'string' || !html) return { status: 400, json: { error: 'comment_html is required' } };
          return { status: 201, json: this.addComment(i.id, html, this.botUserId) };
        }),
      );
    }
    this.route('GET', `${base}/states/`, () => ({ json: this.page(this.states) }));
    this.route('GET', `${base}/labels/`, () => ({ json: this.page(this.labels) }));
    this.route('GET', '/api/v1/users/me/', () => ({ json: { id: this.botUserId, display_name: 'Factory Bot' } }));
  }

  get botUserId(): string {
    return this.opts.botUserId ?? 'bot-user';
  }

  stateId(name: string): string {
    const s = this.states.find((x) => x.name.toLowerCase() === name.toLowerCase());
    if (!s) throw new Error(`FakePlane: no state named ${name}`);
    return s.id;
  }

  /** Seeds a work item (as if a human created it in Plane). */
  addIssue(i: Partial<PlaneIssue> & { name: string; stateName?: string }): PlaneIssue {
    const ts = this.timestamp();
    const { stateName, ...rest } = i;
    const issue: PlaneIssue = {
      id: randomUUID(),
      sequence_id: this.nextSeq++,
      description_html: '',
      labels: [],
      priority: 'none',
      project: this.opts.projectId ?? 'project-1',
      workspace: this.opts.workspaceId ?? 'workspace-1',
      created_at: ts,
      updated_at: ts,
      ...rest,
      state: rest.state ?? (stateName ? this.stateId(stateName) : (this.states[0]?.id ?? '')),
    };
    this.issues.set(issue.id, issue);
    return issue;
  }

  addUserComment(issueId: string, html: string, actor = 'human-1'): PlaneComment {
    return this.addComment(issueId, html, actor);
  }

  /** Comments oldest first. */
  comments(issueId: string): PlaneComment[] {
    return this.commentStore.get(issueId) ?? [];
  }

  /** State ids set through PATCH, in order (the initial state is not included). */
  stateHistory(issueId: string): string[] {
    return this.history.get(issueId) ?? [];
  }

  /** issueEvent() pre-filled from a stored work item. */
  issueEventFor(issueId: string, overrides: IssueEventInput = {}): Record<string, unknown> {
    const i = this.issues.get(issueId);
    if (!i) throw new Error(`FakePlane: no work item ${issueId}`);
    const st = this.states.find((s) => s.id === i.state);
    return issueEvent({
      id: i.id,
      name: i.name,
      description_html: i.description_html,
      sequence_id: i.sequence_id,
      stateId: i.state,
      stateName: st?.name ?? 'Unknown',
      stateGroup: st?.group ?? 'started',
      projectId: i.project,
      workspaceId: i.workspace,
      labels: i.labels.map((id) => this.labels.find((l) => l.id === id)?.name ?? id),
      ...overrides,
    });
  }

  protected override guard(req: RouteRequest): Reply | undefined {
    const key = req.headers['x-api-key'];
    const ok = typeof key === 'string' && key !== '' && (this.opts.apiKey === undefined || key === this.opts.apiKey);
    return ok ? undefined : { status: 401, json: { detail: 'Given API token is not valid' } };
  }

  protected override failureBody(status: number): unknown {
    return { error: status >= 500 ? 'Internal Server Error' : 'Simulated failure' };
  }

  protected override notFoundBody(): unknown {
    return { error: 'Not found' };
  }

  private timestamp(): string {
    this.lastTs = Math.max(Date.now(), this.lastTs + 1);
    return new Date(this.lastTs).toISOString();
  }

  private page<T>(results: T[]): Record<string, unknown> {
    return {
      grouped_by: null,
      sub_grouped_by: null,
      total_count: results.length,
      next_cursor: `${results.length}:1:0`,
      prev_cursor: `${results.length}:-1:1`,
      next_page_results: false,
      prev_page_results: false,
      count: results.length,
      total_pages: 1,
      total_results: results.length,
      extra_stats: null,
      results,
    };
  }

  private withIssue(r: RouteRequest, fn: (i: PlaneIssue) => Reply): Reply {
    const i = this.issues.get(r.params.id ?? '');
    return i ? fn(i) : { status: 404, json: { error: 'Issue not found' } };
  }

  /** The next n creates answer 201 with a body that has no id (a proxy or an API change mangled it), creating nothing. */
  createWithoutId = 0;

  private createIssue(r: RouteRequest): Reply {
    const name = field(r.json, 'name');
    if (typeof name !== 'string' || !name) return { status: 400, json: { name: ['This field is required.'] } };
    if (this.createWithoutId > 0) {
      this.createWithoutId--;
      return { status: 201, json: { name } };
    }
    const body = (r.json ?? {}) as Record<string, unknown>;
    const issue = this.addIssue({
      ...body,
      name,
      project: r.params.project ?? 'project-1',
      description_html: typeof body.description_html === 'string' ? body.description_html : '<p></p>',
      ...(typeof body.state === 'string' ? { state: body.state } : {}),
    });
    return { status: 201, json: issue };
  }

  private patchIssue(i: PlaneIssue, r: RouteRequest): Reply {
    const body = r.json;
    if (!body || typeof body !== 'object') return { status: 400, json: { error: 'JSON body required' } };
    const b = body as Record<string, unknown>;
    if (typeof b.state === 'string') {
      if (!this.states.some((s) => s.id === b.state)) return { status: 400, json: { state: ['Invalid state'] } };
      const h = this.history.get(i.id) ?? [];
      h.push(b.state);
      this.history.set(i.id, h);
    }
    for (const [k, v] of Object.entries(b)) if (k !== 'id' && k !== 'sequence_id') i[k] = v;
    i.updated_at = this.timestamp();
    return { json: i };
  }

  private addComment(issueId: string, html: string, actor: string): PlaneComment {
    const ts = this.timestamp();
    const issue = this.issues.get(issueId);
    const c: PlaneComment = {
      id: randomUUID(),
      comment_html: html,
      issue: issueId,
      actor,
      actor_detail: { id: actor, display_name: actor },
      project: issue?.project ?? 'project-1',
      workspace: issue?.workspace ?? 'workspace-1',
      created_at: ts,
      updated_at: ts,
    };
    const list = this.commentStore.get(issueId) ?? [];
    list.push(c);
    this.commentStore.set(issueId, list);
    return c;
  }
}
