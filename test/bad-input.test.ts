import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentEnv, type AgentEnv } from './agent-harness.js';
import { freshDatabase, hasPg, type TestDatabase } from './pg.js';

const weird: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  1e308,
  '',
  ' ',
  'x'.repeat(300),
  '../../etc',
  '<script>',
  [],
  [1],
  {},
  { a: 1 },
  '1',
  'null',
  NaN,
];
// The same sweep on SQLite and, when a test server is configured, on PostgreSQL (stricter types).
describe.each(hasPg ? ['sqlite', 'postgres'] : ['sqlite'])('bad input across the API (%s)', (dialect) => {
  let env: AgentEnv;
  let pg: TestDatabase | undefined;
  beforeAll(async () => {
    if (dialect === 'postgres') pg = await freshDatabase();
    env = await createAgentEnv(pg ? { overrides: { database: { url: pg.url } } } : {});
  });
  afterAll(async () => {
    await env.stopAll();
    await pg?.drop();
  });
  it('never answers 5xx to odd field values, query strings or raw bodies', async () => {
    const routes: Array<[string, string, string[]]> = [
      ['POST', '/api/tasks', ['title', 'description', 'repo', 'agent_type', 'plane_issue_id', 'plane_sequence_id']],
      ['POST', '/api/workflows', ['workflow_name', 'title', 'repo', 'definition']],
      ['POST', '/api/workflows/code_review', ['title', 'repo']],
      ['POST', '/api/messages', ['sender', 'message', 'message_type', 'reply_to', 'task_id', 'recipient']],
      ['POST', '/api/handoffs', ['from_task_id', 'to_task_id', 'output_type', 'content']],
      ['POST', '/api/tasks/1/answer', ['answer']],
      ['POST', '/api/tasks/1/resume', ['response']],
      ['POST', '/api/queue/pause', ['until', 'minutes', 'reason']],
      ['POST', '/api/tasks/1/environments', ['compose', 'service', 'port', 'preview']],
    ];
    expect((await env.app.inject({ url: '/health' })).json().database).toBe(dialect);
    const bad: string[] = [];
    for (const [method, url, fields] of routes) {
      for (const f of fields)
        for (const v of weird) {
          const res = await env.app.inject({
            method: method as 'POST',
            url,
            payload: { title: 'ok', repo: 'acme/web', sender: 's', message: 'm', from_task_id: 1, [f]: v } as object,
          });
          if (res.statusCode >= 500) bad.push(`${url} ${f}=${JSON.stringify(v)} -> ${res.statusCode} ${res.body.slice(0, 200)}`);
        }
    }
    const gets = [
      '/api/tasks?limit=-5',
      '/api/tasks?status[]=x',
      '/api/tasks/99999999999999999999',
      '/api/messages?search=%22%22%22',
      '/api/messages?search=AND%20OR%20NOT',
      '/api/messages?before_id=abc',
      '/api/messages?task_id=1e5',
      '/api/tasks/1/logs?since=-1',
      '/api/memory?q=%00',
      '/api/stats?since=0',
      '/api/events/stream?types=%3Cx%3E',
      '/api/environments/abc',
      '/api/workflows?limit=1e9',
      '/api/tasks/1/handoffs?direction=',
      '/tasks/abc',
      '/api/tasks/%2e%2e',
    ];
    for (const u of gets) {
      if (u.includes('stream')) continue;
      const res = await env.app.inject({ url: u });
      if (res.statusCode >= 500) bad.push(`${u} -> ${res.statusCode} ${res.body.slice(0, 200)}`);
    }
    for (const body of ['', 'null', '[]', '"str"', '{"title":', '\u0000', '{"title":"x","repo":"a/b","__proto__":{"x":1}}']) {
      const res = await env.app.inject({
        method: 'POST',
        url: '/api/tasks',
        headers: { 'content-type': 'application/json' },
        payload: body,
      });
      if (res.statusCode >= 500) bad.push(`raw ${JSON.stringify(body)} -> ${res.statusCode} ${res.body.slice(0, 200)}`);
    }
    // Text with a NUL character is stored (on PostgreSQL as U+FFFD) rather than failing.
    const nul = await env.app.inject({ method: 'POST', url: '/api/messages', payload: { sender: 'a\u0000b', message: 'x\u0000y' } });
    expect(nul.statusCode).toBe(201);
    expect(nul.json().message).toMatch(/^x(\u0000|\uFFFD)y$/);
    expect(bad).toEqual([]);
  });
});
