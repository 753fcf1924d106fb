import type { FastifyInstance } from 'fastify';
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { AppServices as Services } from '../services.js';
import type { PrLoop } from '../../prloop/service.js';
import { HttpError } from '../http-error.js';
import { PUBLIC_ROUTE } from '../auth.js';

const EVENTS = new Set([
  'check_suite',
  'check_run',
  'status',
  'pull_request',
  'pull_request_review',
  'pull_request_review_comment',
  'issue_comment',
]);

export function verifyGitHubSignature(raw: Buffer, secret: string, header: string | undefined): boolean {
  if (!header?.startsWith('sha256=')) return false;
  const want = createHmac('sha256', secret).update(raw).digest();
  const given = Buffer.from(header.slice(7), 'hex');
  return given.length === want.length && timingSafeEqual(given, want);
}

/** GitHub webhooks for the PR loop at /webhooks/github (and /api/webhooks/github). */
export function githubWebhookRoutes(loop: PrLoop) {
  return async (app: FastifyInstance, s: Services): Promise<void> => {
    const secret = s.config.secrets.githubWebhookSecret;
    await app.register(async (scope) => {
      scope.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: 5_242_880 }, (_req, body, done) => done(null, body));
      const handler = async (req: { body: unknown; headers: Record<string, string | string[] | undefined> }) => {
        if (!secret) throw new HttpError(503, 'not_configured', 'GITHUB_WEBHOOK_SECRET is not set; GitHub webhooks are refused');
        const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        const sig = req.headers['x-hub-signature-256'];
        if (!verifyGitHubSignature(raw, secret, Array.isArray(sig) ? sig[0] : sig))
          throw new HttpError(401, 'invalid_signature', 'missing or invalid X-Hub-Signature-256');
        const event = String(req.headers['x-github-event'] ?? '');
        if (event === 'ping') return { status: 'pong' };
        if (!EVENTS.has(event)) return { status: 'ignored', reason: `event ${event || '(none)'}` };
        let payload: unknown;
        try {
          payload = JSON.parse(raw.toString('utf8'));
        } catch {
          throw new HttpError(400, 'invalid_json', 'request body is not valid JSON', 'body');
        }
        if (!payload || typeof payload !== 'object') throw new HttpError(400, 'invalid_payload', 'payload must be a JSON object', 'body');
        return loop.onWebhook(event, payload as Record<string, unknown>);
      };
      // Public to the API token: the signature check in the handler authenticates the sender.
      scope.post('/webhooks/github', PUBLIC_ROUTE, handler);
      scope.post('/api/webhooks/github', PUBLIC_ROUTE, handler);
    });
  };
}
