// Recognises Claude Code's usage/rate limit reports and when they reset. Pure.

export interface UsageLimit {
  resetAt: Date | null;
  message: string;
}

const LIMIT = /(usage limit|rate limit|limit reached|too many requests|quota exceeded|overloaded)/i;

/**
 * Claude Code reports an exhausted plan as "Claude AI usage limit reached|<epoch seconds>" (result
 * text, is_error) and API limits with 429/rate_limit errors. Returns undefined for other errors.
 */
function limitIn(texts: string[]): UsageLimit | undefined {
  for (const t of texts) {
    if (!t || !LIMIT.test(t)) continue;
    const epoch = /limit reached\|(\d{9,11})/i.exec(t);
    let resetAt: Date | null = epoch ? new Date(Number(epoch[1]) * 1000) : null;
    if (!resetAt) {
      const iso = /reset(?:s)?(?: at)? (\d{4}-\d{2}-\d{2}T[\d:.]+Z?)/i.exec(t);
      if (iso && !Number.isNaN(Date.parse(iso[1]!))) resetAt = new Date(iso[1]!);
    }
    return { resetAt, message: t.trim().split('\n')[0]!.slice(0, 300) };
  }
  return undefined;
}

/** What the CLI itself said about how a run ended (never its stdout: tool results and assistant text live there). */
export interface CliEnding {
  result: { isError: boolean; text: string } | null;
  exitCode: number | null;
  stderrTail: string[];
}

/**
 * A usage limit, only from the CLI's own signals: an error result event, or, when the CLI died
 * without one, a non-zero exit whose stderr says so. A file or web page the agent read that
 * mentions a limit is in the tool results and never counts.
 */
export function detectUsageLimit(run: CliEnding): UsageLimit | undefined {
  if (run.result) return run.result.isError ? limitIn([run.result.text]) : undefined;
  if (run.exitCode !== null && run.exitCode !== 0) return limitIn(run.stderrTail.slice(-5));
  return undefined;
}

/** Whether a stored run error (written from the same signals) reports a usage limit. */
export function detectUsageLimitText(error: string): boolean {
  return limitIn([error]) !== undefined;
}
