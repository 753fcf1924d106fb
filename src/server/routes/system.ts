import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';
import { VERSION } from '../../version.js';
import { analytics } from '../../db/repositories/analytics.js';

export async function systemRoutes(app: FastifyInstance, s: Services): Promise<void> {
  // Open even with an auth token: load balancers and systemd probes use it.
  app.get('/health', async (_req, reply) => {
    let db = 'ok';
    try {
      s.db.prepare('SELECT 1').get();
    } catch {
      db = 'error';
    }
    const counts = db === 'ok' ? s.repos.tasks.counts() : null;
    const status = db === 'ok' ? 'ok' : 'error';
    return reply.status(status === 'ok' ? 200 : 503).send({
      status,
      version: VERSION,
      db,
      queue: { depth: counts?.runnable ?? 0, queued: counts?.queued ?? 0, running: s.scheduler.runningCount(), max_concurrent: s.config.max_concurrent_agents },
      ...s.health(),
    });
  });

  app.get('/api/agents', async () => s.scheduler.agents());

  // Upstream-compatible read-only routes used by dashboards and scripts.
  app.get('/api/analytics', async () => analytics(s.db));
  app.get('/api/settings', async () => ({
    plane_base_url: s.config.plane.base_url.replace(/\/+$/, ''),
    plane_workspace_slug: s.config.plane.workspace_slug,
    plane_project_id: s.config.plane.project_id,
  }));
}
