// Recognises Claude Code's usage/rate limit reports and when they reset. Pure.

export interface UsageLimit { resetAt: Date | null; message: string }

const LIMIT = /(usage limit|rate limit|limit reached|too many requests|quota exceeded|overloaded)/i;

/**
 * Claude Code reports an exhausted plan as "Claude AI usage limit reached|<epoch seconds>" (result
 * text, is_error) and API limits with 429/rate_limit errors. Returns undefined for other errors.
 */
export function detectUsageLimit(texts: string[]): UsageLimit | undefined {
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
