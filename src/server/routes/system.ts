import type { FastifyInstance } from 'fastify';
import type { AppServices as Services } from '../services.js';
import { VERSION } from '../../version.js';
import { PUBLIC_ROUTE } from '../auth.js';

/** A process whose heartbeat (every 5 s) is older than this is reported as not alive. */
const WORKER_STALE_MS = 20_000;

function parseIds(json: string): number[] {
  try {
    const v = JSON.parse(json) as unknown;
    return Array.isArray(v) ? v.filter((x): x is number => Number.isInteger(x)) : [];
  } catch {
    return [];
  }
}

export async function systemRoutes(app: FastifyInstance, s: Services): Promise<void> {
  // Open even with an auth token: load balancers and systemd probes use it.
  app.get('/health', PUBLIC_ROUTE, async (_req, reply) => {
    // Asynchronous and side by side: a PostgreSQL server that is slow or waiting on a lock slows this
    // answer only, and by one round trip, not one per part.
    const [counts, parts] = await Promise.all([s.status.counts().catch(() => null), s.health()]);
    const db = counts ? 'ok' : 'error';
    const status = db === 'ok' ? 'ok' : 'error';
    return reply.status(status === 'ok' ? 200 : 503).send({
      status,
      version: VERSION,
      role: s.config.role,
      worker_id: s.running.owner,
      database: s.status.dialect,
      db,
      queue: {
        depth: counts?.runnable ?? 0,
        queued: counts?.queued ?? 0,
        running: s.running.count(),
        max_concurrent: s.config.max_concurrent_agents,
      },
      ...parts,
    });
  });

  // Running agents: this process's own, or, with several processes, every worker's (from the database).
  app.get('/api/agents', async () => {
    return s.status.agents();
  });

  // Every process sharing the database, with what it runs (several hosts: PostgreSQL).
  app.get('/api/workers', async () => {
    const now = Date.now();
    return (await s.status.workers(new Date(now - 86_400_000).toISOString())).map((w) => ({
      id: w.id,
      host: w.host,
      pid: w.pid,
      role: w.role,
      max_concurrent: w.max_concurrent,
      running_tasks: parseIds(w.running),
      started_at: w.started_at,
      last_heartbeat: w.heartbeat_at,
      stopped_at: w.stopped_at,
      alive: !w.stopped_at && now - Date.parse(w.heartbeat_at) < WORKER_STALE_MS,
    }));
  });

  // Upstream-compatible read-only routes used by dashboards and scripts.
  app.get('/api/analytics', async () => s.status.analytics());
  app.get('/api/settings', async () => ({
    plane_base_url: s.config.plane.base_url.replace(/\/+$/, ''),
    plane_workspace_slug: s.config.plane.workspace_slug,
    plane_project_id: s.config.plane.project_id,
  }));
}
