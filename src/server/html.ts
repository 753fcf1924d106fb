// Serving the static pages: one @fastify/static registration and the same safe headers everywhere.
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { notFound } from '../errors.js';
import { markScopePublic } from './auth.js';
import { STATIC_DIR } from '../paths.js';

/** Registers /static/ once, whichever page plugin comes first. */
export async function ensureStatic(app: FastifyInstance): Promise<void> {
  if (!app.hasRoute({ method: 'GET', url: '/static/*' })) {
    await app.register(async (scope) => {
      markScopePublic(scope); // page assets carry no data; the pages fetch data from the guarded API
      await scope.register(fastifyStatic, { root: STATIC_DIR, prefix: '/static/', decorateReply: false, index: false, maxAge: 0 });
    });
  }
}

/** Sends a page from static/ with headers that keep agent text from ever running as script. */
export async function sendPage(reply: FastifyReply, file: string): Promise<FastifyReply> {
  const full = path.join(STATIC_DIR, file);
  if (!existsSync(full)) throw notFound(file);
  return (
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      // Defence in depth: even if agent text slipped into markup, no inline or foreign script would run.
      .header(
        'content-security-policy',
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
      )
      .send(await readFile(full, 'utf8'))
  );
}
