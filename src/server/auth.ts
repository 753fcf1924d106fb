// API authentication decided by the route the router matched, never by the raw URL string: any
// spelling of a path that reaches a handler (percent-encoding, doubled slashes, trailing slashes)
// reaches it through this check. Routes are closed by default; a route opens only by saying so.
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { TaskTokens } from '../auth/task-token.js';
import { HttpError } from './http-error.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Open without the API token: health probes, the static pages, webhooks (which check signatures). */
    public?: boolean;
    /** Also open to the agent task token of the task named by the route's `:id`. */
    taskToken?: boolean;
  }
}

/** Route options that open a route without the API token. */
export const PUBLIC_ROUTE = { config: { public: true } } as const;
/** Route options that also accept the task token of the task in `:id`. */
export const TASK_TOKEN_ROUTE = { config: { taskToken: true } } as const;

/** Marks every route registered in `scope` (and its children) public, e.g. @fastify/static's. */
export function markScopePublic(scope: FastifyInstance): void {
  scope.addHook('onRoute', (route) => {
    route.config = { ...(route.config as object), public: true };
  });
}

export interface AuthOptions {
  token: string;
  taskTokens: TaskTokens;
  /** Throttle failed authentications per client address (on when listening beyond loopback). */
  limitFailures?: { max: number; timeWindowMs: number };
}

const UNAUTHORIZED = 'missing or invalid bearer token (Authorization: Bearer <FACTORY_AUTH_TOKEN>)';

function bearer(req: FastifyRequest): string {
  const header = req.headers.authorization ?? '';
  return header.startsWith('Bearer ') ? header.slice(7) : '';
}

export async function registerAuth(app: FastifyInstance, opts: AuthOptions): Promise<void> {
  const want = createHash('sha256').update(opts.token).digest();
  const matchesApiToken = (given: string): boolean =>
    given.length > 0 && timingSafeEqual(createHash('sha256').update(given).digest(), want);

  let throttle: ((req: FastifyRequest, reply: FastifyReply) => Promise<void>) | undefined;
  if (opts.limitFailures) {
    // global:false: only requests that failed authentication count towards the limit.
    await app.register(rateLimit, { global: false });
    throttle = app.rateLimit({
      max: opts.limitFailures.max,
      timeWindow: opts.limitFailures.timeWindowMs,
      errorResponseBuilder: (_req, ctx) =>
        new HttpError(ctx.statusCode, 'rate_limited', `too many failed authentications from this address; retry in ${ctx.after}`),
    }) as typeof throttle;
  }

  app.addHook('onRequest', async (req, reply) => {
    // routeOptions.config belongs to the matched route; a request that matched none gets an empty one.
    const route = req.routeOptions.config ?? {};
    if (route.public === true) return;
    const given = bearer(req);
    if (matchesApiToken(given)) return;
    if (route.taskToken === true && given.startsWith('ftk_')) {
      const taskId = opts.taskTokens.verify(given);
      const params = req.params as { id?: string } | undefined;
      if (taskId !== undefined && params?.id !== undefined && Number(params.id) === taskId) return;
    }
    if (throttle) {
      await throttle(req, reply);
      if (reply.sent) return reply;
    }
    throw new HttpError(401, 'unauthorized', UNAUTHORIZED);
  });
}
