import type { z } from 'zod';
import { HttpError } from './http-error.js';

/** Parses a request part with a zod schema; the first problem becomes a 400 naming the field. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'query' | 'params'): z.infer<S> {
  if (where === 'body' && (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value))) {
    throw new HttpError(400, 'invalid_input', 'request body must be a JSON object', 'body');
  }
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const field = issue.path.length ? issue.path.join('.') : where;
  throw new HttpError(400, 'invalid_input', `${field}: ${issue.message}`, field);
}
