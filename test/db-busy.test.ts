// A database locked by someone else answers 503 with Retry-After, never 500, and loses nothing.
import Database from 'better-sqlite3';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestEnv, gatedExecutor } from './helpers.js';

describe.skipIf(process.env.FACTORY_TEST_DIALECT === 'postgres')('busy database', () => {
  it('answers 503 with Retry-After while another process holds the write lock', async () => {
    const env = await createTestEnv({ executor: gatedExecutor().executor, start: false });
    const other = new Database(path.join(env.config.data_dir, 'factory.db'));
    try {
      other.exec('BEGIN EXCLUSIVE');
      const res = await env.app.inject({ method: 'POST', url: '/api/tasks', payload: { title: 'while locked', repo: 'acme/web' } });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('2');
      expect(res.json().error.code).toBe('database_busy');
      other.exec('ROLLBACK');
      const after = await env.app.inject({ method: 'POST', url: '/api/tasks', payload: { title: 'after', repo: 'acme/web' } });
      expect(after.statusCode).toBe(201);
      const list = (await env.app.inject({ url: '/api/tasks' })).json() as Array<{ title: string }>;
      expect(list.map((t) => t.title)).toEqual(['after']);
    } finally {
      other.close();
      await env.close();
    }
  }, 30_000);
});
