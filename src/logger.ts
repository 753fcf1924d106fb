import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger } from 'pino';
import { scrub, scrubDeep } from './secrets.js';

export type { Logger };

// Paths that may carry credentials in any log object.
const REDACT = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["x-plane-signature"]',
  'req.headers["x-hub-signature-256"]',
  'headers.authorization',
  '*.token',
  '*.apiKey',
  '*.api_key',
  '*.password',
  '*.secret',
  '*.bot_token',
];

/** `destination`: where lines go instead of stdout (tests). */
export function createLogger(opts: { level: string; pretty: boolean }, destination?: DestinationStream): Logger {
  return pino(
    {
      level: opts.level,
      redact: { paths: REDACT, censor: '[REDACTED]' },
      // Fields of log objects (summaries, URLs, agent output) pass the scrubber like message strings.
      formatters: { log: (obj) => scrubDeep(obj) },
      hooks: {
        // Known secret values are removed from every string argument and error message.
        logMethod(args, method) {
          const cleaned = args.map((a) => {
            if (typeof a === 'string') return scrub(a);
            if (a instanceof Error)
              return Object.assign(new Error(scrub(a.message)), { name: a.name, stack: a.stack ? scrub(a.stack) : undefined });
            if (a && typeof a === 'object' && 'err' in a && (a as { err: unknown }).err instanceof Error) {
              const e = (a as { err: Error }).err;
              return { ...a, err: { type: e.name, message: scrub(e.message), stack: e.stack ? scrub(e.stack) : undefined } };
            }
            return a;
          });
          return method.apply(this, cleaned as Parameters<typeof method>);
        },
      },
      ...(opts.pretty && !destination && hasPrettyPrinter()
        ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss' } } }
        : {}),
    },
    destination,
  );
}

/** pino-pretty is a development tool: a production install (npm ci --omit=dev) logs JSON lines. */
function hasPrettyPrinter(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}
