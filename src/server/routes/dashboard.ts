// The web dashboard: one static page (static/dashboard.html) for `/` and its deep links; the page
// routes on the client (history API) and talks to the JSON API. Assets come from /static/.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyReply } from 'fastify';
import { notFound } from '../../errors.js';
import type { RoutePlugin } from '../app.js';

/** static/ at the repository root: three levels up from both src/server/routes and dist/server/routes. */
const STATIC_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../static');
const PAGE = path.join(STATIC_DIR, 'dashboard.html');

/** Page paths the client understands; ids are digits only, anything else is a JSON 404. */
export const DASHBOARD_PATHS = ['/', '/tasks', '/tasks/:id(^\\d{1,15}$)', '/workflows', '/workflows/:id(^\\d{1,15}$)', '/new'] as const;

async function sendPage(reply: FastifyReply) {
  if (!existsSync(PAGE)) throw notFound('dashboard.html');
  return reply
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-cache')
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    // Defence in depth: even if agent text slipped into markup, no inline or foreign script would run.
    .header('content-security-policy', "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    .send(await readFile(PAGE, 'utf8'));
}

export const dashboardRoutes: RoutePlugin = async (app) => {
  if (app.hasRoute({ method: 'GET', url: '/' })) return; // registered already (idempotent)
  // The message board plugin serves the same folder; whichever registers first does it.
  if (!app.hasRoute({ method: 'GET', url: '/static/*' })) {
    await app.register(fastifyStatic, { root: STATIC_DIR, prefix: '/static/', decorateReply: false, index: false, maxAge: 0 });
  }
  for (const url of DASHBOARD_PATHS) app.get(url, async (_req, reply) => sendPage(reply));
};
