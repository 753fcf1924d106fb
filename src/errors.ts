import { scrub } from './secrets.js';

/**
 * What went wrong, in the domain's words: bad input, a missing or conflicting thing, a part that is
 * unavailable, or an outside service that failed. Services throw these and know no HTTP; the
 * server's error handler (src/server/http-error.ts) is the one place that turns a kind into a status.
 */
export type ErrorKind = 'invalid' | 'too_large' | 'not_found' | 'conflict' | 'unavailable' | 'upstream_failed';

/** An error meant for the caller: its kind, a stable code, and optionally the offending field. */
export class DomainError extends Error {
  override name = 'DomainError';
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** Bad input naming its field: "field: reason". */
export const invalidInput = (field: string, reason: string) => new DomainError('invalid', 'invalid_input', `${field}: ${reason}`, field);
export const notFound = (what: string) => new DomainError('not_found', 'not_found', `${what} not found`);
export const conflict = (message: string) => new DomainError('conflict', 'conflict', message);

/** The JSON body for an error: ours under `error`, the upstream-compatible string under `detail`. */
export function errorBody(code: string, message: string, field?: string) {
  const clean = scrub(message);
  return { error: { code, message: clean, ...(field ? { field } : {}) }, detail: clean };
}

/** Turns any thrown value into an Error, keeping the original as cause. */
export function coerceError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new Error(typeof err === 'string' ? err : JSON.stringify(err), { cause: err });
}
