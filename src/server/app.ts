// Builds the Fastify app around the services. Never listens and never reads the environment.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Services } from '../services.js';
import { AppError, errorBody } from '../errors.js';
import { taskRoutes } from './routes/tasks.js';
import { systemRoutes } from './routes/system.js';

declare module 'fastify' {
  interface FastifyInstance {
    services: Services;
  }
}

export type RoutePlugin = (app: FastifyInstance, services: Services) => void | Promise<void>;

export interface AppOptions {
  /** Extra route plugins registered after the built-in ones (later issues add theirs here). */
  plugins?: RoutePlugin[];
}

export async function buildApp(services: Services, opts: AppOptions = {}): Promise<FastifyInstance> {
  const { config, logger } = services;
  const app = Fastify({
    loggerInstance: logger.child({ component: 'http' }) as FastifyBaseLogger,
    // Requests are logged by our onResponse hook (errors at error level, the rest at debug).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.server.body_limit_bytes,
    routerOptions: { ignoreTrailingSlash: true },
    requestTimeout: 120_000,
    // Keep-alive sockets and long streams must not hold shutdown open.
    forceCloseConnections: true,
  });
  app.decorate('services', services);

  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode >= 500) req.log.error({ method: req.method, url: req.routeOptions.url, status: reply.statusCode }, 'request failed');
    else req.log.debug({ method: req.method, url: req.routeOptions.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request');
  });

  const token = config.secrets.authToken;
  if (token) {
    const want = createHash('sha256').update(token).digest();
    app.addHook('onRequest', async (req) => {
      const url = req.url;
      if (!url.startsWith('/api/') || url.startsWith('/api/webhooks/')) return;
      const header = req.headers.authorization ?? '';
      const given = header.startsWith('Bearer ') ? header.slice(7) : '';
      let ok = given.length > 0 && timingSafeEqual(createHash('sha256').update(given).digest(), want);
      if (!ok && given.startsWith('ftk_')) {
        // An agent's task token opens only its own task's agent-facing routes.
        const taskId = services.taskTokens.verify(given);
        const m = /^\/api\/tasks\/(\d+)\/(environments|messages)(\/|\?|$)/.exec(url);
        ok = taskId !== undefined && m !== null && Number(m[1]) === taskId;
      }
      if (!ok) throw new AppError(401, 'unauthorized', 'missing or invalid bearer token (Authorization: Bearer <FACTORY_AUTH_TOKEN>)');
    });
  }

  app.setErrorHandler((err: FastifyError | AppError | Error, req, reply) => {
    if (err instanceof AppError) {
      return reply.status(err.status).send(errorBody(err.code, err.message, err.field));
    }
    const fe = err as FastifyError;
    const status = fe.statusCode ?? 500;
    if (status < 500) {
      const code = fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'payload_too_large'
        : fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'unsupported_media_type'
          : fe.code?.startsWith('FST_ERR_CTP') || err instanceof SyntaxError ? 'invalid_json' : 'bad_request';
      const message = code === 'invalid_json' ? `request body is not valid JSON: ${err.message}` : err.message;
      return reply.status(status).send(errorBody(code, message, code === 'invalid_json' ? 'body' : undefined));
    }
    req.log.error({ err }, 'unhandled error');
    return reply.status(500).send(errorBody('internal_error', 'internal error; see the server log'));
  });
  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send(errorBody('not_found', `route ${req.method} ${req.url.split('?')[0]} not found`));
  });

  await app.register(async (scope) => {
    await systemRoutes(scope, services);
    await taskRoutes(scope, services);
    for (const p of opts.plugins ?? []) await p(scope, services);
  });
  return app;
}
