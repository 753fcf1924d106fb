// Docker test/preview environments. Agent-facing routes live under /api/tasks/:id/environments (a task
// token opens them, see app.ts); the operator routes list and tear down any environment.
import { z } from 'zod';
import type { EnvironmentRow } from '../../db/repositories/environments.js';
import { ENV_TYPES } from '../../db/repositories/environments.js';
import type { EnvironmentManager, RemoveResult } from '../../docker/manager.js';
import { notFound } from '../../errors.js';
import { HttpError } from '../http-error.js';
import type { RoutePlugin } from '../app.js';
import { parseInput } from '../validation.js';
import { getTaskOr404, idParams } from './tasks.js';
import { TASK_TOKEN_ROUTE } from '../auth.js';

const boolFlag = z.enum(['true', 'false', '1', '0', ''], { error: 'must be true or false' }).transform((v) => v === 'true' || v === '1');

export const upBody = z.object({
  compose: z
    .string({ error: 'must be a string' })
    .trim()
    .min(1, 'must not be empty')
    .max(500, 'must be at most 500 characters')
    .refine((v) => !v.startsWith('/') && !/^[a-zA-Z]:[\\/]/.test(v), 'must be a path relative to the task worktree, not an absolute path')
    .refine((v) => !v.split(/[\\/]+/).includes('..'), 'must stay inside the task worktree (".." is not allowed)')
    .default('docker-compose.yml'),
  service: z
    .string({ error: 'is required and must be a string' })
    .trim()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$')
    .max(100, 'must be at most 100 characters'),
  port: z.preprocess(
    (v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v),
    z
      .number({ error: 'is required and must be an integer between 1 and 65535' })
      .int('must be an integer between 1 and 65535')
      .min(1, 'must be an integer between 1 and 65535')
      .max(65535, 'must be an integer between 1 and 65535'),
  ),
  preview: z.boolean({ error: 'must be true or false' }).default(false),
  health_path: z
    .string({ error: 'must be a string' })
    .regex(/^\/[^\s]*$/, 'must start with "/" and contain no spaces')
    .max(500, 'must be at most 500 characters')
    .optional(),
});

const typeQuery = z.object({
  type: z.enum(ENV_TYPES, { error: `must be one of ${ENV_TYPES.join(', ')}` }).optional(),
  all: boolFlag.default(false),
});

const listQuery = z.object({
  all: boolFlag.default(false),
  task_id: z.coerce
    .number({ error: 'must be a positive integer' })
    .int('must be a positive integer')
    .positive('must be a positive integer')
    .optional(),
});

const ageSeconds = (row: EnvironmentRow) => Math.max(0, Math.floor((Date.now() - Date.parse(row.created_at)) / 1000));

/** The public Environment object. */
export function environmentJson(row: EnvironmentRow) {
  return {
    id: row.id,
    task_id: row.task_id,
    env_type: row.env_type,
    project: row.project,
    service: row.service,
    port: row.port,
    url: row.url,
    host: row.host,
    status: row.status,
    health: row.health,
    repo: row.repo,
    pr_number: row.pr_number,
    compose_file: row.compose_file,
    container_id: row.container_id,
    last_error: row.last_error,
    created_at: row.created_at,
    updated_at: row.updated_at,
    removed_at: row.removed_at,
    /** The Factory host whose Docker runs it (several worker hosts). */
    machine: row.machine,
    age_seconds: ageSeconds(row),
  };
}

/** The upstream /api/preview-environments item (one per container there; one per environment here). */
export function upstreamPreviewJson(row: EnvironmentRow) {
  const health =
    row.status === 'starting'
      ? 'starting'
      : row.status === 'failed'
        ? 'unhealthy'
        : row.status === 'removed'
          ? 'stopped'
          : row.health === 'healthy' || row.health === 'unhealthy'
            ? row.health
            : 'running';
  return {
    container_id: row.container_id.slice(0, 12),
    name: `${row.project}-${row.service}-1`,
    task_id: String(row.task_id),
    env_type: row.env_type,
    repo: row.repo,
    url: row.url,
    status: row.status,
    health,
    ports: '',
    created_at: row.created_at,
    created_ts: row.created_at,
    age_seconds: ageSeconds(row),
    // Beyond upstream:
    id: row.id,
    project: row.project,
  };
}

function removedOrThrow(results: RemoveResult[]) {
  const failed = results.filter((r) => !r.ok);
  if (failed.length) {
    throw new HttpError(502, 'environment_teardown_failed', failed.map((r) => `${r.row.project}: ${r.error ?? 'failed'}`).join('; '));
  }
  return results.map((r) => environmentJson(r.row));
}

export function environmentRoutes(manager: EnvironmentManager): RoutePlugin {
  return async (app, s) => {
    // ---- agent-facing (task token accepted for the task's own id)
    app.post('/api/tasks/:id/environments', TASK_TOKEN_ROUTE, async (req, reply) => {
      const { id } = parseInput(idParams, req.params, 'params');
      const body = parseInput(upBody, req.body, 'body');
      await getTaskOr404(s, id);
      const row = await manager.up({
        taskId: id,
        compose: body.compose,
        service: body.service,
        port: body.port,
        preview: body.preview,
        healthPath: body.health_path,
      });
      return reply.status(201).send(environmentJson(row));
    });

    app.get('/api/tasks/:id/environments', TASK_TOKEN_ROUTE, async (req) => {
      const { id } = parseInput(idParams, req.params, 'params');
      const q = parseInput(typeQuery, req.query, 'query');
      await getTaskOr404(s, id);
      return (await manager.list(q.all, id)).filter((r) => !q.type || r.env_type === q.type).map(environmentJson);
    });

    app.delete('/api/tasks/:id/environments', TASK_TOKEN_ROUTE, async (req) => {
      const { id } = parseInput(idParams, req.params, 'params');
      const q = parseInput(typeQuery, req.query, 'query');
      await getTaskOr404(s, id);
      return { removed: removedOrThrow(await manager.down(id, q.type)) };
    });

    // ---- operator
    app.get('/api/environments', async (req) => {
      const q = parseInput(listQuery, req.query, 'query');
      return (await manager.list(q.all, q.task_id)).map(environmentJson);
    });

    app.get('/api/environments/:id', async (req) => {
      const { id } = parseInput(idParams, req.params, 'params');
      const row = await manager.get(id);
      if (!row) throw notFound('Environment');
      return environmentJson(row);
    });

    app.delete('/api/environments/:id', async (req) => {
      const { id } = parseInput(idParams, req.params, 'params');
      const r = await manager.remove(id);
      if (!r) throw notFound('Environment');
      const [row] = removedOrThrow([r]);
      return { status: 'removed', environment: row };
    });

    // ---- upstream-compatible aliases
    app.get('/api/preview-environments', async () => (await manager.list(false)).map(upstreamPreviewJson));

    // Upstream matched any prefix, even one character, but not a full id (contract §6.14). Here: our
    // environment id, a full container id, or a container id prefix of at least 12 characters.
    app.delete('/api/preview-environments/:containerId', async (req) => {
      const { containerId } = parseInput(z.object({ containerId: z.string().trim().min(1).max(128) }), req.params, 'params');
      const live = await manager.list(false);
      const byContainer = /^[0-9a-f]{12,64}$/i.test(containerId)
        ? live.filter(
            (r) =>
              r.container_id &&
              (r.container_id.startsWith(containerId.toLowerCase()) || containerId.toLowerCase().startsWith(r.container_id)),
          )
        : [];
      const row =
        byContainer.length === 1
          ? byContainer[0]
          : /^\d{1,15}$/.test(containerId)
            ? live.find((r) => r.id === Number(containerId))
            : undefined;
      if (!row) throw new HttpError(404, 'not_found', `Container ${containerId} not found or not a Factory container`);
      const r = await manager.remove(row.id);
      if (r) removedOrThrow([r]);
      return { status: 'removed', container_id: containerId };
    });
  };
}
