import { describe, expect, it } from 'vitest';
import { createTestEnv, gatedExecutor } from './helpers.js';

describe('bearer auth', () => {
  it('protects /api/* when FACTORY_AUTH_TOKEN is set, leaves /health open', async () => {
    const env = await createTestEnv({ executor: gatedExecutor().executor, env: { FACTORY_AUTH_TOKEN: 'tok-1234567890' } });
    try {
      const none = await env.app.inject({ url: '/api/tasks' });
      expect(none.statusCode).toBe(401);
      expect(none.json().error.code).toBe('unauthorized');
      expect(none.body).not.toContain('tok-1234567890');
      expect((await env.app.inject({ url: '/api/tasks', headers: { authorization: 'Bearer wrong' } })).statusCode).toBe(401);
      expect((await env.app.inject({ url: '/api/tasks', headers: { authorization: 'tok-1234567890' } })).statusCode).toBe(401);
      expect((await env.app.inject({ url: '/api/tasks', headers: { authorization: 'Bearer tok-1234567890' } })).statusCode).toBe(200);
      expect((await env.app.inject({ url: '/health' })).statusCode).toBe(200);
      const create = await env.app.inject({ method: 'POST', url: '/api/tasks', payload: { title: 'x', repo: 'a/b' } });
      expect(create.statusCode).toBe(401);
    } finally {
      await env.close();
    }
  });

  it('is open without a token', async () => {
    const env = await createTestEnv({ executor: gatedExecutor().executor });
    try {
      expect((await env.app.inject({ url: '/api/tasks' })).statusCode).toBe(200);
      expect(env.config.server.host).toBe('127.0.0.1');
    } finally {
      await env.close();
    }
  });
});
