// A small GET helper for the doctor: bounded by a timeout, never throws, and never reports the URL
// (some URLs, like Telegram's, carry the token in the path).

export interface ProbeOk {
  ok: true;
  status: number;
  headers: Headers;
  body: unknown;
}

export interface ProbeFailed {
  ok: false;
  /** Why the request did not complete: refused, timed out, DNS, TLS... */
  reason: string;
}

export type ProbeResult = ProbeOk | ProbeFailed;

export async function probe(url: string, headers: Record<string, string>, timeoutMs: number): Promise<ProbeResult> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { 'user-agent': 'factory-doctor', ...headers }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    return { ok: false, reason: networkReason(err, timeoutMs) };
  }
  const text = await res.text().catch(() => '');
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // keep the raw text
  }
  return { ok: true, status: res.status, headers: res.headers, body };
}

/** A short description of a failed fetch, from the error's cause (ECONNREFUSED, ENOTFOUND...). */
export function networkReason(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${Math.round(timeoutMs / 1000)} s`;
  const cause = e?.cause;
  if (cause?.code === 'ECONNREFUSED') return 'connection refused';
  if (cause?.code === 'ENOTFOUND' || cause?.code === 'EAI_AGAIN') return 'host name does not resolve';
  if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message.split('\n')[0]})` : ''}`;
  if (cause?.message) return cause.message.split('\n')[0]!;
  return e?.message?.split('\n')[0] ?? 'request failed';
}

/** Reads one string field of a JSON object body, if present. */
export function field(body: unknown, ...keys: string[]): string | undefined {
  let cur: unknown = body;
  for (const k of keys) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return typeof cur === 'string' ? cur : typeof cur === 'number' ? String(cur) : undefined;
}
