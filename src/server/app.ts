// Builds the Fastify app around the services. Never listens and never reads the environment.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { AppServices as Services } from './services.js';
import { errorBody } from '../errors.js';
import { callerError } from './http-error.js';
import { mightHoldSecret, scrub, scrubDeep } from '../secrets.js';
import { isDatabaseBusy } from '../db/busy.js';
import { taskRoutes } from './routes/tasks.js';
import { systemRoutes } from './routes/system.js';
import { registerAuth } from './auth.js';

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

/** Failed authentications allowed per client address per minute when the port is reachable from outside. */
const FAILED_AUTH_LIMIT = { max: 30, timeWindowMs: 60_000 };

/** Retry-After for a request that met a locked or busy database. */
const DB_BUSY_RETRY_SECONDS = 2;

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
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
    // Errors the router raises before any hook runs (a path parameter past 100 characters) keep our JSON shape.
    frameworkErrors: (err, _req, reply) => {
      const status = err.statusCode ?? 400;
      const code = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'uri_too_long' : 'bad_request';
      (reply as FastifyReply)
        .status(status)
        .send(errorBody(code, code === 'uri_too_long' ? 'a path parameter is longer than 100 characters' : err.message, 'path'));
    },
  });
  app.decorate('services', services);

  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode >= 500)
      req.log.error({ method: req.method, url: req.routeOptions.url, status: reply.statusCode }, 'request failed');
    else req.log.debug({ method: req.method, url: req.routeOptions.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request');
  });

  const token = config.secrets.authToken;
  if (token) {
    await registerAuth(app, {
      token,
      taskTokens: services.taskTokens,
      limitFailures: isLoopback(config.server.host) ? undefined : FAILED_AUTH_LIMIT,
    });
  }

  // Every JSON answer passes the one scrubber (task summaries, errors, logs, board, memory, handoffs).
  // Checked once serialized: a clean answer (nearly all) goes out as it is, without copying it.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (typeof payload !== 'string' || !String(reply.getHeader('content-type') ?? '').startsWith('application/json')) return payload;
    return mightHoldSecret(payload) ? scrubJsonText(payload) : payload;
  });

  app.setErrorHandler((err: FastifyError | Error, req, reply) => {
    const mine = callerError(err);
    if (mine) return reply.status(mine.status).send(errorBody(mine.code, mine.message, mine.field));
    const fe = err as FastifyError;
    const status = fe.statusCode ?? 500;
    if (status < 500) {
      const code =
        fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
          ? 'payload_too_large'
          : fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
            ? 'unsupported_media_type'
            : fe.code?.startsWith('FST_ERR_CTP') || err instanceof SyntaxError
              ? 'invalid_json'
              : 'bad_request';
      const message = code === 'invalid_json' ? `request body is not valid JSON: ${err.message}` : err.message;
      return reply.status(status).send(errorBody(code, message, code === 'invalid_json' ? 'body' : undefined));
    }
    if (isDatabaseBusy(err)) {
      req.log.warn({ err, url: req.routeOptions.url }, 'database busy: answered 503');
      return reply
        .status(503)
        .header('retry-after', String(DB_BUSY_RETRY_SECONDS))
        .send(errorBody('database_busy', 'the database is busy (locked by another process); retry shortly'));
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

/** A JSON answer with every string in it scrubbed; text that does not parse is scrubbed as text. */
function scrubJsonText(payload: string): string {
  try {
    return JSON.stringify(scrubDeep(JSON.parse(payload) as unknown));
  } catch {
    return scrub(payload);
  }
}
