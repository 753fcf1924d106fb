// A revision request stored on a task (tasks.revision_context): what the PR loop asks the next run
// to fix. Written by the PR loop, read by the executor; it lives here so neither imports the other.

export interface RevisionContext {
  kind: 'ci_fix' | 'review_fix';
  text: string;
}

/** The stored JSON, or undefined when it is empty or not a revision request. */
export function parseRevision(raw: string): RevisionContext | undefined {
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as RevisionContext;
    return v && (v.kind === 'ci_fix' || v.kind === 'review_fix') && typeof v.text === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}
