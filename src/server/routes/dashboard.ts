// The web dashboard: one static page (static/dashboard.html) for `/` and its deep links; the page
// routes on the client (history API) and talks to the JSON API. Assets come from /static/.
import type { RoutePlugin } from '../app.js';
import { ensureStatic, sendPage } from '../html.js';
import { PUBLIC_ROUTE } from '../auth.js';

/** Page paths the client understands; ids are digits only, anything else is a JSON 404. */
export const DASHBOARD_PATHS = ['/', '/tasks', '/tasks/:id(^\\d{1,15}$)', '/workflows', '/workflows/:id(^\\d{1,15}$)', '/new'] as const;

export const dashboardRoutes: RoutePlugin = async (app) => {
  if (app.hasRoute({ method: 'GET', url: '/' })) return; // registered already (idempotent)
  await ensureStatic(app);
  for (const url of DASHBOARD_PATHS) app.get(url, PUBLIC_ROUTE, async (_req, reply) => sendPage(reply, 'dashboard.html'));
};
