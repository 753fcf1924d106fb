// The one place where errors become HTTP answers: a DomainError's kind maps to a status here, and
// the HTTP layer's own refusals (authentication, signatures, rate limits) carry theirs.
import { DomainError, type ErrorKind } from '../errors.js';

/** A refusal of the HTTP layer itself, with its status. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const STATUS_OF: Record<ErrorKind, number> = {
  invalid: 400,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  upstream_failed: 502,
  unavailable: 503,
};

/** Status, code, message and field of an error meant for the caller; undefined for anything else. */
export function callerError(err: unknown): { status: number; code: string; message: string; field?: string } | undefined {
  if (err instanceof HttpError) return { status: err.status, code: err.code, message: err.message, field: err.field };
  if (err instanceof DomainError) return { status: STATUS_OF[err.kind], code: err.code, message: err.message, field: err.field };
  return undefined;
}
