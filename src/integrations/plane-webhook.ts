// Plane webhook payloads (self-hosted "v1" and Cloud "v2") turned into one small shape. Pure.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { htmlToText } from './html.js';

export class PlaneWebhookError extends Error {
  override name = 'PlaneWebhookError';
}

export type PlaneEvent =
  | {
      kind: 'issue';
      issueId: string;
      name: string;
      description: string;
      sequenceId: number | null;
      stateId: string;
      stateName: string;
      /** Label names (v1 payloads carry label objects); `labelIds` when only ids came (Cloud v2). */
      labels: string[];
      labelIds: string[];
      action: string;
      field: string | null;
      updatedAt: string;
      externalSource: string;
      /** Who made the change: member id, email, display name (whatever the payload carries). */
      actorIds: string[];
    }
  | { kind: 'comment'; issueId: string; commentId: string; html: string; actor: string; actorIds: string[] }
  | { kind: 'other'; event: string };

/** Constant-time check of X-Plane-Signature: lowercase hex HMAC-SHA256 of the raw body. */
export function verifyPlaneSignature(raw: Buffer, secret: string, header: string | undefined): boolean {
  if (!header) return false;
  const want = createHmac('sha256', secret).update(raw).digest();
  const given = Buffer.from(header.trim().replace(/^sha256=/, ''), 'hex');
  return given.length === want.length && timingSafeEqual(given, want);
}

const s = (v: unknown) => (typeof v === 'string' ? v : '');

export function parsePlaneWebhook(payload: unknown, headerEvent = ''): PlaneEvent {
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) throw new PlaneWebhookError('payload must be a JSON object');
  const p = payload as Record<string, unknown>;
  const event = s(p.event) || headerEvent;
  if (!event) throw new PlaneWebhookError('payload has no "event"');
  const data = p.data;
  const isIssue = event === 'issue' || event === 'work_item' || /^workitem\.(created|updated)$/.test(event);
  const isComment = event === 'issue_comment' || event === 'comment' || /^workitem\.comment\.(created|updated)$/.test(event);
  if (!isIssue && !isComment) return { kind: 'other', event };
  if (!data || typeof data !== 'object') throw new PlaneWebhookError('payload has no "data" object');
  const d = data as Record<string, unknown>;
  if (isComment) {
    const issueId = s(d.issue) || s(d.issue_id) || s(d.work_item_id);
    const commentId = s(d.id);
    if (!issueId || !commentId) throw new PlaneWebhookError('comment payload needs data.id and data.issue');
    const actor =
      typeof d.actor === 'object' && d.actor ? s((d.actor as Record<string, unknown>).id) : s(d.actor) || s(d.created_by) || s(d.actor_id);
    return { kind: 'comment', issueId, commentId, html: s(d.comment_html), actor, actorIds: actorIdentities(d.actor, actor) };
  }
  const issueId = s(d.id);
  if (!issueId) throw new PlaneWebhookError('issue payload needs data.id');
  const state = d.state;
  const stateId = typeof state === 'object' && state ? s((state as Record<string, unknown>).id) : s(state) || s(d.state_id);
  const stateName = typeof state === 'object' && state ? s((state as Record<string, unknown>).name) : '';
  const rawLabels = Array.isArray(d.labels) ? d.labels : [];
  const labels = rawLabels.map((l) => (typeof l === 'object' && l ? s((l as Record<string, unknown>).name) : '')).filter(Boolean);
  const labelIds = [...(Array.isArray(d.label_ids) ? d.label_ids : []), ...rawLabels.filter((l) => typeof l === 'string')].map(String);
  const activity = (p.activity ?? {}) as Record<string, unknown>;
  const action = (s(p.action) || event.split('.').pop() || '').toLowerCase();
  return {
    kind: 'issue',
    issueId,
    name: s(d.name).trim(),
    description: htmlToText(s(d.description_html)),
    sequenceId: typeof d.sequence_id === 'number' ? d.sequence_id : null,
    stateId,
    stateName,
    labels,
    labelIds,
    action: action.replace(/d$/, ''), // created → create, updated → update
    field:
      s(activity.field) ||
      (p.previous_attributes && typeof p.previous_attributes === 'object' ? (Object.keys(p.previous_attributes)[0] ?? null) : null),
    updatedAt: s(d.updated_at),
    externalSource: s(d.external_source),
    actorIds: actorIdentities(activity.actor, s(d.updated_by) || s(d.created_by)),
  };
}

/** The identities of a Plane user: a UserLite object's id, email and display name, or a bare id. */
function actorIdentities(actor: unknown, fallbackId: string): string[] {
  if (actor && typeof actor === 'object') {
    const a = actor as Record<string, unknown>;
    return [s(a.id), s(a.email), s(a.display_name)].filter(Boolean);
  }
  return [s(actor) || fallbackId].filter(Boolean);
}

/** The repo and agent type an issue's labels ask for (the last matching label wins). */
export function labelsToTask(labels: string[], agentTypes: readonly string[]): { repo?: string; agentType?: string } {
  const out: { repo?: string; agentType?: string } = {};
  for (const l of labels) {
    const name = l.trim();
    if (/^repo:/i.test(name)) out.repo = name.slice(5).trim();
    else if (agentTypes.includes(name.toLowerCase())) out.agentType = name.toLowerCase();
  }
  return out;
}
