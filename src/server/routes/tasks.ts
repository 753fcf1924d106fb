import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppServices as Services } from '../services.js';
import { AGENT_TYPES } from '../../config.js';
import { TASK_STATUSES, isFinished } from '../../domain/task-status.js';
import { conflict, notFound } from '../../errors.js';
import { HttpError } from '../http-error.js';
import { parseInput } from '../validation.js';
import { taskJson } from '../serialize.js';
import { parseRepoSpec, RepoSpecError } from '../../git/repo-spec.js';
import type { TaskRow } from '../../db/repositories/tasks.js';

export const idParams = z.object({
  id: z.coerce
    .number({ error: 'must be a positive integer' })
    .int('must be a positive integer')
    .positive('must be a positive integer')
    .max(Number.MAX_SAFE_INTEGER),
});
const BRANCH_NAME = /^$|^(?![-/.])(?!.*\.\.)(?!.*\/\/)(?!.*\/\.)(?!.*\.lock$)(?!.*[/.]$)[A-Za-z0-9._/-]+$/;
const boolFlag = z.enum(['true', 'false', '1', '0', '']).transform((v) => v === 'true' || v === '1');

export const createTaskBody = z.object({
  title: z
    .string({ error: 'is required and must be a string' })
    .trim()
    .min(1, 'must not be empty')
    .max(500, 'must be at most 500 characters'),
  description: z.string({ error: 'must be a string' }).max(100_000, 'must be at most 100000 characters').default(''),
  repo: z.string({ error: 'must be a string' }).trim().max(200, 'must be at most 200 characters').default(''),
  agent_type: z.enum(AGENT_TYPES, { error: `must be one of ${AGENT_TYPES.join(', ')}` }).optional(),
  plane_issue_id: z.string({ error: 'must be a string' }).max(100).default(''),
  plane_sequence_id: z.number({ error: 'must be an integer or null' }).int('must be an integer').nullable().default(null),
  // The branch to start from and open the pull request against; the remote's default when empty.
  // Only what git allows in a branch name and never an option or a refspec's syntax (: * ^ ~ ..).
  base_branch: z
    .string({ error: 'must be a string' })
    .trim()
    .max(200, 'must be at most 200 characters')
    .regex(BRANCH_NAME, 'must be a branch name: letters, digits and . _ / - (not starting with - or /, no .., no .lock at the end)')
    .default(''),
});

const listQuery = z.object({
  status: z.enum(TASK_STATUSES, { error: `must be one of ${TASK_STATUSES.join(', ')}` }).optional(),
  repo: z.string().max(200).optional(),
  limit: z.coerce
    .number({ error: 'must be an integer' })
    .int('must be an integer')
    .min(1, 'must be between 1 and 500')
    .max(500, 'must be between 1 and 500')
    .default(100),
  offset: z.coerce.number({ error: 'must be an integer' }).int('must be an integer').min(0, 'must be 0 or more').default(0),
  // Keyset paging: the next page starts below the last id seen, at the cost of one index probe
  // however deep it is (an offset walks every row before it).
  before_id: z.coerce.number({ error: 'must be an integer' }).int('must be an integer').min(1, 'must be 1 or more').optional(),
});

const logsQuery = z.object({
  since: z.string().max(64).optional(),
  limit: z.coerce
    .number({ error: 'must be an integer' })
    .int('must be an integer')
    .min(1, 'must be between 1 and 1000')
    .max(1000, 'must be between 1 and 1000')
    .default(100),
});

/** Resolves the repo field (empty → plane.default_repo) and checks its syntax; 400 on a bad name. */
export function checkRepo(s: Services, repo: string): { repo: string; defaultAgent?: string } {
  const value = repo || s.config.plane.default_repo;
  if (!value) throw new HttpError(400, 'invalid_input', 'repo: is required (no plane.default_repo is configured)', 'repo');
  try {
    const spec = parseRepoSpec(value, { repos: s.config.repos, defaultOrg: s.config.default_org, cloneBase: s.config.github.clone_base });
    return { repo: value, defaultAgent: spec.defaultAgent };
  } catch (err) {
    if (err instanceof RepoSpecError) throw new HttpError(400, 'invalid_input', `repo: ${err.message}`, 'repo');
    throw err;
  }
}

export async function getTaskOr404(s: Services, id: number): Promise<TaskRow> {
  const t = await s.tasks.get(id);
  if (!t) throw notFound('Task');
  return t;
}

export async function taskRoutes(app: FastifyInstance, s: Services): Promise<void> {
  app.post('/api/tasks', async (req, reply) => {
    const q = parseInput(z.object({ auto_run: boolFlag.default(false) }), req.query, 'query');
    const body = parseInput(createTaskBody, req.body, 'body');
    const { repo, defaultAgent } = checkRepo(s, body.repo);
    const task = await s.tasks.create({ ...body, repo, agent_type: body.agent_type ?? defaultAgent ?? 'coder', run: q.auto_run });
    if (q.auto_run) s.running.notify();
    return reply.status(201).send(taskJson(task));
  });

  app.get('/api/tasks', async (req) => {
    const q = parseInput(listQuery, req.query, 'query');
    return (await s.reads.list(q)).map((t) => taskJson(t, t.last_output));
  });

  app.get('/api/tasks/:id', async (req) => {
    const { id } = parseInput(idParams, req.params, 'params');
    const t = await getTaskOr404(s, id);
    // Every agent run of the task (first run, resumes, CI and review revisions) with its cost.
    const runs = (await s.reads.runs(id)).map((r) => ({
      id: r.id,
      attempt: r.attempt,
      kind: r.kind,
      outcome: r.outcome,
      error: r.error,
      started_at: r.started_at,
      ended_at: r.ended_at,
      duration_ms: r.duration_ms,
      cost_usd: r.cost_usd,
      input_tokens: r.input_tokens,
      output_tokens: r.output_tokens,
      num_turns: r.num_turns,
    }));
    return { ...taskJson(t, t.last_output), runs };
  });

  app.post('/api/tasks/:id/run', async (req) => {
    const { id } = parseInput(idParams, req.params, 'params');
    const t = await getTaskOr404(s, id);
    if (t.status !== 'queued') throw conflict(`Task is ${t.status}, must be queued`);
    const updated = (await s.tasks.requestRun(id)) ?? t;
    s.running.notify();
    return taskJson(updated);
  });

  app.post('/api/tasks/:id/cancel', async (req) => {
    const { id } = parseInput(idParams, req.params, 'params');
    const t = await getTaskOr404(s, id);
    if (isFinished(t.status)) throw conflict(`Task is ${t.status}; only queued, running or waiting tasks can be cancelled`);
    const after = await s.running.cancel(id, (s.config.agent.kill_grace_seconds + 5) * 1000);
    return taskJson(after ?? t);
  });

  app.get('/api/tasks/:id/logs', async (req) => {
    const { id } = parseInput(idParams, req.params, 'params');
    const q = parseInput(logsQuery, req.query, 'query');
    await getTaskOr404(s, id);
    let sinceId: number | undefined;
    let sinceTs: string | undefined;
    if (q.since !== undefined && q.since !== '') {
      if (/^\d+$/.test(q.since)) sinceId = Number(q.since);
      else if (!Number.isNaN(Date.parse(q.since))) sinceTs = new Date(q.since).toISOString();
      else throw new HttpError(400, 'invalid_input', 'since: must be a log id or an ISO-8601 time', 'since');
    }
    const rows = await s.reads.logs(id, { sinceId, sinceTs, limit: q.limit });
    return {
      logs: rows.map((r) => ({ id: r.id, message: r.line, timestamp: r.ts, stream: r.stream })),
      next_since: rows.length ? rows[rows.length - 1]!.id : (sinceId ?? null),
    };
  });
}
