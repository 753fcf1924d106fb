import { scrub } from './secrets.js';

/** An error meant for the API caller: a stable code, an HTTP status, and optionally the offending field. */
export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export const notFound = (what: string) => new AppError(404, 'not_found', `${what} not found`);
export const conflict = (message: string) => new AppError(409, 'conflict', message);

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
