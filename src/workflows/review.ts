// Reads the reviewer's structured verdict out of free text. Pure.

export const SEVERITIES = ['blocker', 'major', 'minor', 'nit'] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface ReviewIssue {
  severity: Severity;
  description: string;
  file?: string;
  line?: number;
  suggestion?: string;
}
export interface Review {
  approved: boolean;
  summary: string;
  issues: ReviewIssue[];
  parsed: boolean;
}

/** Every balanced {...} substring that parses as JSON, fenced blocks first. */
function jsonCandidates(text: string): unknown[] {
  const out: unknown[] = [];
  for (const m of text.matchAll(/```(?:json)?\s*\n([\s\S]*?)```/g)) {
    try {
      out.push(JSON.parse(m[1]!));
    } catch {
      /* not JSON */
    }
  }
  for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1)) {
    let depth = 0;
    let inStr = false;
    for (let j = i; j < text.length; j++) {
      const c = text[j];
      if (inStr) {
        if (c === '\\') j++;
        else if (c === '"') inStr = false;
      } else if (c === '"') inStr = true;
      else if (c === '{') depth++;
      else if (c === '}' && --depth === 0) {
        try {
          out.push(JSON.parse(text.slice(i, j + 1)));
        } catch {
          /* not JSON */
        }
        break;
      }
    }
  }
  return out;
}

function normaliseIssue(v: unknown): ReviewIssue | null {
  if (!v || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  const sev = String(o.severity ?? '').toLowerCase();
  const severity: Severity = (SEVERITIES as readonly string[]).includes(sev)
    ? (sev as Severity)
    : sev === 'critical' || sev === 'high'
      ? 'blocker'
      : sev === 'medium'
        ? 'major'
        : sev === 'low'
          ? 'minor'
          : 'major';
  const description = String(o.description ?? o.message ?? o.issue ?? '').trim();
  if (!description) return null;
  return {
    severity,
    description: description.slice(0, 2000),
    ...(typeof o.file === 'string' ? { file: o.file } : {}),
    ...(Number.isInteger(o.line) ? { line: o.line as number } : {}),
    ...(typeof o.suggestion === 'string' ? { suggestion: o.suggestion.slice(0, 2000) } : {}),
  };
}

/**
 * The last JSON object with an `approved` field wins. Without one the reading is conservative:
 * not approved, with one major issue saying the verdict was unreadable.
 */
export function parseReview(text: string): Review {
  const found = jsonCandidates(text).filter(
    (c): c is Record<string, unknown> => !!c && typeof c === 'object' && 'approved' in (c as object),
  );
  const v = found[found.length - 1];
  if (!v) {
    return {
      approved: false,
      parsed: false,
      summary: text.trim().slice(0, 500) || 'The reviewer gave no verdict.',
      issues: [
        { severity: 'major', description: 'The reviewer did not produce a readable verdict; treat the change as not yet approved.' },
      ],
    };
  }
  const issues = Array.isArray(v.issues) ? v.issues.map(normaliseIssue).filter((i): i is ReviewIssue => i !== null) : [];
  const blocking = issues.some((i) => i.severity === 'blocker' || i.severity === 'major');
  return {
    // An "approval" that still lists blocking issues is not one.
    approved: v.approved === true && !blocking,
    summary: typeof v.summary === 'string' ? v.summary.slice(0, 2000) : '',
    issues,
    parsed: true,
  };
}

export function issueCounts(r: Review): Record<Severity, number> {
  const c = { blocker: 0, major: 0, minor: 0, nit: 0 };
  for (const i of r.issues) c[i.severity]++;
  return c;
}

/** The review as text for the revision agent's prompt. */
export function reviewAsPrompt(r: Review): string {
  const lines = r.issues.map(
    (i, n) =>
      `${n + 1}. [${i.severity}] ${i.file ? `${i.file}${i.line ? `:${i.line}` : ''} — ` : ''}${i.description}${i.suggestion ? `\n   Suggestion: ${i.suggestion}` : ''}`,
  );
  return [`Reviewer verdict: ${r.approved ? 'approved' : 'changes requested'}`, r.summary ? `Summary: ${r.summary}` : '', ...lines]
    .filter(Boolean)
    .join('\n');
}
