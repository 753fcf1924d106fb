// Every route in Fastify's own route table, reached without a token in many spellings of its
// path: none may reach a handler. Guards against checks made on the URL string instead of the route.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createTestEnv, type TestEnv } from './helpers.js';

const TOKEN = 'tok-routes-1234567890';

/** Routes meant to be open without the API token (webhooks check their own signatures). */
const EXPECTED_PUBLIC = [
  'GET /',
  'GET /health',
  'GET /messages',
  'GET /new',
  'GET /static/*',
  'GET /tasks',
  'GET /tasks/:id(^\\d{1,15}$)',
  'GET /workflows',
  'GET /workflows/:id(^\\d{1,15}$)',
  'POST /api/webhooks/github',
  'POST /api/webhooks/plane',
  'POST /webhooks/github',
  'POST /webhooks/plane',
];

/** Reads Fastify's printed route tree back into "METHOD /full/path" entries (HEAD twins left out). */
function routeTable(app: FastifyInstance): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes().split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    for (const method of (m[3] ?? '').split(', ').filter((x) => x && x !== 'HEAD')) out.push(`${method} ${stack.join('')}`);
  }
  return out.sort();
}

/** A concrete path for a route pattern: parameters become plausible values. */
function concrete(pattern: string): string {
  return pattern.replace(/:[A-Za-z]+(\([^)]*\))?/g, '1').replace(/\*$/, 'x');
}

/** The many spellings an attacker tries for one path. */
function pathForms(p: string): string[] {
  const [, first = '', rest = ''] = /^\/([^/]*)(.*)$/.exec(p) ?? [];
  const encodeAll = (s: string) => [...s].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('');
  return [
    p,
    `/${encodeAll(first)}${rest}`,
    `/%${first.charCodeAt(0).toString(16)}${first.slice(1)}${rest}`,
    `/${first.toUpperCase()}${rest}`,
    `/${first[0]?.toUpperCase() ?? ''}${first.slice(1)}${rest.toUpperCase()}`,
    p.replace(/\//g, '//'),
    `/${p}`,
    `/${first}${rest.replace(/\//g, '%2F')}`,
    `/${first}${rest.replace(/\//g, '%2f')}`,
    `${p}/`,
    `${p}.`,
    `${p};`,
    `${p};x=1`,
    `${p}%00`,
    `${p}%20`,
    `/x/../${first}${rest}`,
    `/${first}/./${rest.slice(1)}`,
    `/${first}/x/..${rest}`,
    `/%2e%2e/${first}${rest}`,
    `${p}?next=/health`,
    `${p}#frag`,
    `${p}/${'a'.repeat(8000)}`,
    `/${'a'.repeat(8000)}/..${p}`,
  ];
}

describe('route-based authentication', () => {
  let env: TestEnv;
  let routes: string[];
  beforeAll(async () => {
    env = await createTestEnv({
      env: {
        FACTORY_AUTH_TOKEN: TOKEN,
        FACTORY_HOST: '127.0.0.1',
        GITHUB_WEBHOOK_SECRET: 'gh-secret',
        PLANE_WEBHOOK_SECRET: 'plane-secret',
      },
      start: false,
    });
    routes = routeTable(env.app);
  });
  afterAll(async () => env?.close());

  it('opens exactly the expected public routes', () => {
    expect(routes.length).toBeGreaterThan(40);
    const publicRoutes = routes.filter((r) => !r.split(' ')[1]!.startsWith('/api/') || r.includes('/webhooks/'));
    // Every other route must be under /api/ and guarded; the public list is reviewed, not grown by accident.
    expect(publicRoutes).toEqual([...EXPECTED_PUBLIC].sort());
  });

  it('answers 401 for every guarded route in every path form, and no handler runs', async () => {
    const before = (await env.app.inject({ url: '/api/tasks', headers: { authorization: `Bearer ${TOKEN}` } })).json();
    const guarded = routes.filter((r) => !EXPECTED_PUBLIC.includes(r));
    const reached: string[] = [];
    let sent = 0;
    for (const route of guarded) {
      const [method, pattern] = route.split(' ') as [string, string];
      for (const url of pathForms(concrete(pattern))) {
        const res = await env.app.inject({
          method: method as 'GET',
          url,
          ...(method === 'GET' || method === 'DELETE' ? {} : { payload: { title: 'x', repo: 'acme/app', description: 'd' } }),
        });
        sent++;
        const code = (res.json() as { error?: { code?: string } }).error?.code;
        // 414: the router refused an over-long parameter before matching, so no hook or handler ran.
        const refused = (res.statusCode === 401 && code === 'unauthorized') || (res.statusCode === 414 && code === 'uri_too_long');
        if (!refused) {
          reached.push(`${method} ${url.slice(0, 80)} -> ${res.statusCode} ${res.body.slice(0, 80)}`);
        }
      }
    }
    expect(sent).toBeGreaterThan(guarded.length * 20);
    expect(reached).toEqual([]);
    const after = (await env.app.inject({ url: '/api/tasks', headers: { authorization: `Bearer ${TOKEN}` } })).json();
    expect(after).toEqual(before); // nothing was created or changed
  });

  it('still serves the plain path with the token (the check can pass)', async () => {
    const res = await env.app.inject({
      method: 'POST',
      url: '/api/tasks',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: { title: 'x', repo: 'acme/app' },
    });
    expect(res.statusCode).toBe(201);
  });

  it('a task token opens only its own task environments routes', async () => {
    const token = env.services.taskTokens.issue(7);
    const auth = { authorization: `Bearer ${token}` };
    // One character changed (never to itself: a token ending in 0 stayed valid, 1 time in 16).
    const tampered = `${token.slice(0, -1)}${token.endsWith('0') ? '1' : '0'}`;
    const own = await env.app.inject({ url: '/api/tasks/7/environments', headers: auth });
    expect(own.statusCode).not.toBe(401);
    expect((await env.app.inject({ url: '/api/tasks/8/environments', headers: auth })).statusCode).toBe(401);
    expect((await env.app.inject({ url: '/api/tasks/7', headers: auth })).statusCode).toBe(401);
    expect((await env.app.inject({ url: '/api/tasks', headers: auth })).statusCode).toBe(401);
    expect((await env.app.inject({ url: '/api/tasks/7/environments', headers: { authorization: `Bearer ${tampered}` } })).statusCode).toBe(
      401,
    );
  });
});

describe('failed-authentication rate limit', () => {
  it('throttles failed attempts from one address when bound beyond loopback, never a valid token', async () => {
    const env = await createTestEnv({ env: { FACTORY_AUTH_TOKEN: TOKEN, FACTORY_HOST: '0.0.0.0' }, start: false });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 40; i++)
        statuses.push((await env.app.inject({ url: '/api/tasks', headers: { authorization: 'Bearer guess' } })).statusCode);
      expect(statuses.slice(0, 30).every((s) => s === 401)).toBe(true);
      expect(statuses.slice(30).every((s) => s === 429)).toBe(true);
      const limited = await env.app.inject({ url: '/api/tasks' });
      expect(limited.statusCode).toBe(429);
      expect(limited.json().error.code).toBe('rate_limited');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect((await env.app.inject({ url: '/api/tasks', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode).toBe(200);
    } finally {
      await env.close();
    }
  });

  it('does not throttle on loopback', async () => {
    const env = await createTestEnv({ env: { FACTORY_AUTH_TOKEN: TOKEN, FACTORY_HOST: '127.0.0.1' }, start: false });
    try {
      for (let i = 0; i < 40; i++) expect((await env.app.inject({ url: '/api/tasks' })).statusCode).toBe(401);
    } finally {
      await env.close();
    }
  });
});
