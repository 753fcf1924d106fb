// Which database failures are momentary (a lock held elsewhere, a timeout, no free connection) and
// deserve "try again" (HTTP 503 with Retry-After) rather than "we broke" (500).

/** PostgreSQL SQLSTATEs that clear by themselves: lock_not_available, query_canceled (statement
 * timeout), too_many_connections, cannot_connect_now, serialization_failure, deadlock_detected. */
const PG_TRANSIENT = new Set(['55P03', '57014', '53300', '57P03', '40001', '40P01']);
/** Node network errors on the way to PostgreSQL. */
const NET_TRANSIENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE']);

export function isDatabaseBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED') || PG_TRANSIENT.has(code) || NET_TRANSIENT.has(code);
}
