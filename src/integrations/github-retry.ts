// When a GitHub answer (or its absence) deserves another try, and after how long. Pure.
// GitHub's documented signals: 5xx, 429 and "secondary rate limit" 403s, with `retry-after`
// (seconds) or, when the primary limit is spent, `x-ratelimit-remaining: 0` and
// `x-ratelimit-reset` (epoch seconds).

export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  /** A wait longer than this is not waited out: the call fails and its caller retries later. */
  maxWaitMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 500, maxWaitMs: 60_000 };

export interface Answer {
  status: number;
  headers: { get(name: string): string | null };
  body: string;
}

/** Milliseconds to wait before the next attempt, or undefined when the answer is final. */
export function retryDelay(a: Answer, attempt: number, safeToRepeat: boolean, p: RetryPolicy, now = Date.now()): number | undefined {
  if (attempt >= p.maxAttempts) return undefined;
  const limited = a.status === 429 || (a.status === 403 && isRateLimit(a));
  // A 5xx may have been applied (a POST that created something): repeat only what is safe to repeat.
  if (!limited && !(a.status >= 500 && safeToRepeat)) return undefined;
  const after = Number(a.headers.get('retry-after'));
  let wait: number;
  if (after > 0) wait = after * 1000;
  else if (a.headers.get('x-ratelimit-remaining') === '0' && Number(a.headers.get('x-ratelimit-reset')) > 0)
    wait = Number(a.headers.get('x-ratelimit-reset')) * 1000 - now;
  else wait = backoff(attempt, p.baseDelayMs);
  return wait <= p.maxWaitMs ? Math.max(0, wait) : undefined;
}

/** A request that never got an answer (refused, reset, timed out) is retried when safe to repeat. */
export function networkRetryDelay(attempt: number, safeToRepeat: boolean, p: RetryPolicy): number | undefined {
  return attempt < p.maxAttempts && safeToRepeat ? backoff(attempt, p.baseDelayMs) : undefined;
}

function isRateLimit(a: Answer): boolean {
  return a.headers.get('x-ratelimit-remaining') === '0' || a.headers.get('retry-after') !== null || /rate limit/i.test(a.body);
}

/** base·2^(attempt-1) with ±25 % jitter, so many callers do not retry in lockstep. */
function backoff(attempt: number, base: number): number {
  return Math.round(base * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5));
}
