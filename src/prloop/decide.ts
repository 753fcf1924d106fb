// What a pull request's checks and comments mean for Factory. Pure.
import { createHash } from 'node:crypto';
import { fenceUntrusted } from '../agents/prompt.js';

export interface CheckRunInfo {
  name: string;
  status: string;
  conclusion: string | null;
  output?: { title?: string | null; summary?: string | null; text?: string | null };
  html_url?: string;
}
export interface StatusInfo {
  context: string;
  state: string;
  description?: string | null;
  target_url?: string | null;
}
export interface Failure {
  name: string;
  detail: string;
  url?: string;
}
export interface CiVerdict {
  state: 'pending' | 'success' | 'failure' | 'none';
  failures: Failure[];
  signature: string;
}

const FAILED = new Set(['failure', 'timed_out', 'action_required', 'startup_failure']);

/** Combines check runs and commit statuses of one head commit. Waits while anything is still running. */
export function evaluateCi(runs: CheckRunInfo[], statuses: StatusInfo[]): CiVerdict {
  if (!runs.length && !statuses.length) return { state: 'none', failures: [], signature: '' };
  const pending = runs.some((r) => r.status !== 'completed') || statuses.some((s) => s.state === 'pending');
  const failures: Failure[] = [
    ...runs
      .filter((r) => r.status === 'completed' && FAILED.has(r.conclusion ?? ''))
      .map((r) => ({
        name: r.name,
        detail: [r.output?.title, r.output?.summary, r.output?.text].filter(Boolean).join('\n'),
        url: r.html_url,
      })),
    ...statuses
      .filter((s) => s.state === 'failure' || s.state === 'error')
      .map((s) => ({ name: s.context, detail: s.description ?? '', url: s.target_url ?? undefined })),
  ].sort((a, b) => a.name.localeCompare(b.name));
  if (pending) return { state: 'pending', failures, signature: '' };
  if (!failures.length) return { state: 'success', failures, signature: '' };
  // "The same way": the same checks failing with the same output.
  const signature = createHash('sha256')
    .update(JSON.stringify(failures.map((f) => [f.name, f.detail])))
    .digest('hex')
    .slice(0, 16);
  return { state: 'failure', failures, signature };
}

export function failuresPrompt(v: CiVerdict, maxChars: number): string {
  const per = Math.max(200, Math.floor(maxChars / Math.max(1, v.failures.length)));
  const parts = v.failures.map((f) => {
    const detail = f.detail.length > per ? `…${f.detail.slice(-per)}` : f.detail; // the tail holds the error
    return `### ${f.name}${f.url ? ` (${f.url})` : ''}\n${fenceUntrusted(`CI check ${f.name}`, detail || '(no output)')}`;
  });
  return `## CI failed on the pull request\n\nThese checks failed on the latest commit. Find the cause, fix it, and make sure the checks would pass.\n\n${parts.join('\n\n')}`;
}

export interface Feedback {
  id: string;
  kind: 'review' | 'review_comment' | 'comment';
  user: string;
  body: string;
  path?: string;
  line?: number | null;
  state?: string;
}

/** Feedback that asks for changes: a changes-requested review, or any item that mentions the trigger. */
export function wantsChanges(f: Feedback, trigger: string): boolean {
  if (f.kind !== 'comment' && f.state?.toUpperCase() === 'CHANGES_REQUESTED') return true;
  return f.body.toLowerCase().includes(trigger.toLowerCase());
}

export function feedbackPrompt(items: Feedback[]): string {
  const lines = items.map(
    (f) =>
      `- ${f.user}${f.path ? ` on ${f.path}${f.line ? `:${f.line}` : ''}` : ''}${f.state ? ` (${f.state.toLowerCase()})` : ''}:\n${fenceUntrusted(`GitHub ${f.kind.replace('_', ' ')} by ${f.user}`, f.body.trim())}`,
  );
  return `## Review feedback on the pull request\n\nAddress each point below, then summarise what you changed in your handoff (it is posted as a reply on the PR).\n\n${lines.join('\n')}`;
}
