import type { FastifyInstance } from 'fastify';
import type { AppServices as Services } from '../services.js';
import type { PlaneSync } from '../../integrations/plane-sync.js';
import { parsePlaneWebhook, PlaneWebhookError, verifyPlaneSignature } from '../../integrations/plane-webhook.js';
import { HttpError } from '../http-error.js';
import { PUBLIC_ROUTE } from '../auth.js';

/** Plane webhooks at /webhooks/plane (as documented upstream) and /api/webhooks/plane (as upstream served). */
export function webhookRoutes(plane: PlaneSync) {
  return async (app: FastifyInstance, s: Services): Promise<void> => {
    const secret = s.config.secrets.planeWebhookSecret;
    if (!secret) s.logger.warn('PLANE_WEBHOOK_SECRET is not set: Plane webhooks are accepted without a signature check');
    await app.register(async (scope) => {
      // The signature covers the exact bytes Plane sent, so keep the raw body.
      scope.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: 1_048_576 }, (_req, body, done) => done(null, body));
      const handler = async (req: { body: unknown; headers: Record<string, string | string[] | undefined> }) => {
        const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        if (secret) {
          const sig = req.headers['x-plane-signature'];
          if (!verifyPlaneSignature(raw, secret, Array.isArray(sig) ? sig[0] : sig)) {
            throw new HttpError(401, 'invalid_signature', 'missing or invalid X-Plane-Signature');
          }
        }
        let payload: unknown;
        try {
          payload = JSON.parse(raw.toString('utf8'));
        } catch {
          throw new HttpError(400, 'invalid_json', 'request body is not valid JSON', 'body');
        }
        try {
          const header = req.headers['x-plane-event'];
          const ev = parsePlaneWebhook(payload, Array.isArray(header) ? header[0] : header);
          return plane.handleWebhook(ev);
        } catch (err) {
          if (err instanceof PlaneWebhookError) throw new HttpError(400, 'invalid_payload', err.message, 'body');
          throw err;
        }
      };
      // Public to the API token: the signature check in the handler authenticates the sender.
      scope.post('/webhooks/plane', PUBLIC_ROUTE, handler);
      scope.post('/api/webhooks/plane', PUBLIC_ROUTE, handler);
    });
  };
}
