// Docker test/preview environments end to end: the real server, the fake claude, fake GitHub and
// Telegram, and test/fakes/docker.mjs as the docker command (it records calls and keeps container state).
import { callerError } from '../src/server/http-error.js';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createAgentEnv, type AgentEnv } from './agent-harness.js';
import { readJsonLines } from './fakes/claude-helpers.js';
import { FakeGitHub, FakeTelegram } from './fakes/http/index.js';
import { ROOT, tempDir, waitFor } from './helpers.js';
import { GITHUB_TOKEN } from './agent-harness.js';
import type { EnvironmentManager } from '../src/docker/manager.js';
import { DockerCli } from '../src/docker/docker-cli.js';
import { naming, resolveComposePath } from '../src/docker/compose.js';
import { parsePsLabels } from '../src/docker/manager.js';

const run = promisify(execFile);
const FAKE_DOCKER = fileURLToPath(new URL('./fakes/docker.mjs', import.meta.url));
const CLI = path.join(ROOT, 'bin', 'factory-env.js');
const DOMAIN = 'preview.test.example';
const TG_TOKEN = '123456:ENV-TEST-TOKEN';

const COMPOSE = `services:
  web:
    build: .
    ports: ["3000:3000"]
    labels:
      - app.owner=agent
    healthcheck:
      test: ["CMD", "true"]
  db:
    image: postgres:16-alpine
    ports: ["5432:5432"]
    container_name: fixed-db
`;

interface DockerCall {
  argv: string[];
  cwd: string;
  files: Record<string, string | null>;
}
interface FakeContainer {
  id: string;
  service: string;
  project: string;
  labels: Record<string, string>;
  ports: string[];
  networks: string[];
  health: string | null;
  state: string;
  name: string;
}
interface FakeState {
  projects: Record<string, { containers: FakeContainer[] }>;
  next_id?: number;
}

const YAML_TAGS = ['!reset', '!override'].flatMap((tag) => [
  { tag, resolve: (v: string) => ({ tag, value: v }) },
  { tag, collection: 'seq' as const, resolve: (v: { toJSON(): unknown }) => ({ tag, value: v.toJSON() }) },
]);

/** Everything a test needs around one Factory instance that uses the fake docker. */
function dockerFiles(dir: string) {
  const log = path.join(dir, 'docker-log.jsonl');
  const state = path.join(dir, 'docker-state.json');
  const control = path.join(dir, 'docker-control.json');
  return {
    log,
    state,
    control,
    overrides: (extra: Record<string, unknown> = {}) => ({
      docker: {
        command: FAKE_DOCKER,
        domain: DOMAIN,
        cert_resolver: 'letsencrypt',
        health_timeout_seconds: 2,
        env: { FAKE_DOCKER_LOG: log, FAKE_DOCKER_STATE: state, FAKE_DOCKER_CONTROL: control },
        ...extra,
      },
    }),
    calls: (): DockerCall[] => readJsonLines<DockerCall>(log),
    read: (): FakeState => (existsSync(state) ? JSON.parse(readFileSync(state, 'utf8')) : { projects: {} }),
    write: (s: FakeState) => writeFileSync(state, JSON.stringify(s)),
    setControl: (c: Record<string, boolean>) => writeFileSync(control, JSON.stringify(c)),
  };
}

const managerOf = (env: AgentEnv) => (env.wired as unknown as { environments: EnvironmentManager }).environments;

/** A task whose fake agent runs until cancelled, once its worktree exists and the agent has started. */
async function hungTask(env: AgentEnv, body: Record<string, unknown> = {}, token?: string) {
  const res = await env.app.inject({
    method: 'POST',
    url: '/api/tasks?auto_run=true',
    headers: token ? { authorization: `Bearer ${token}` } : {},
    payload: { repo: 'acme/web', title: 'Environment task', description: 'Bring it up [fake:hang]', ...body },
  });
  expect(res.statusCode, res.body).toBe(201);
  const id = res.json().id as number;
  return waitFor(
    async () => {
      const cur = await env.services.tasks.get(id);
      return cur?.status === 'in_progress' && cur.worktree_path && env.fakeLog().some((r) => r.env.FACTORY_TASK_ID === String(id))
        ? cur
        : undefined;
    },
    { what: `task ${id} running`, timeoutMs: 20_000 },
  );
}

async function worktreeOf(env: AgentEnv, id: number): Promise<string> {
  return (await env.services.tasks.get(id))!.worktree_path;
}

async function writeCompose(env: AgentEnv, id: number, text = COMPOSE, file = 'docker-compose.yml'): Promise<string> {
  const p = path.join(await worktreeOf(env, id), file);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, text);
  return p;
}

const upReq = (env: AgentEnv, id: number, payload: Record<string, unknown>) =>
  env.app.inject({
    method: 'POST',
    url: `/api/tasks/${id}/environments`,
    payload: { compose: 'docker-compose.yml', service: 'web', port: 3000, ...payload },
  });

async function cancel(env: AgentEnv, id: number, token?: string) {
  const res = await env.app.inject({
    method: 'POST',
    url: `/api/tasks/${id}/cancel`,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  expect(res.statusCode, res.body).toBe(200);
  await waitFor(async () => (await env.services.tasks.get(id))?.status === 'cancelled', { what: `task ${id} cancelled` });
}

/** Test environments go in a bus listener after the status change: wait for the row, not only the containers. */
const liveRows = (env: AgentEnv, taskId: number) => managerOf(env).status(taskId);

describe('docker environments (fake docker)', () => {
  let env: AgentEnv;
  let tg: FakeTelegram;
  let d: ReturnType<typeof dockerFiles>;
  const previews: Array<{ taskId: number; url: string }> = [];

  beforeAll(async () => {
    tg = new FakeTelegram({ token: TG_TOKEN });
    const tgUrl = await tg.start();
    const dir = tempDir('factory-env-');
    d = dockerFiles(dir);
    env = await createAgentEnv({
      dir,
      env: { TELEGRAM_BOT_TOKEN: TG_TOKEN },
      overrides: { telegram: { chat_id: '42', api_root: tgUrl }, ...d.overrides() },
    });
    env.services.bus.on('task.preview', ({ task, url }) => {
      previews.push({ taskId: task.id, url });
    });
  });
  afterAll(async () => {
    await env?.stopAll();
    await tg?.stop();
  });

  it('starts a test environment: project, labels, Traefik host, no published ports; removed when the task ends', async () => {
    const t = await hungTask(env);
    const composePath = await writeCompose(env, t.id);
    const res = await upReq(env, t.id, {});
    expect(res.statusCode, res.body).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({
      task_id: t.id,
      env_type: 'test',
      project: `factory-task-${t.id}`,
      url: `https://task-${t.id}.${DOMAIN}`,
      status: 'running',
      health: 'healthy',
      service: 'web',
      port: 3000,
    });

    const upCall = d.calls().find((c) => c.argv.includes('up') && c.argv.includes(`factory-task-${t.id}`))!;
    expect(upCall.cwd).toBe(await worktreeOf(env, t.id));
    const overridePath = upCall.argv[upCall.argv.lastIndexOf('-f') + 1]!;
    expect(upCall.argv).toEqual([
      'compose',
      '-p',
      `factory-task-${t.id}`,
      '-f',
      composePath,
      '-f',
      overridePath,
      'up',
      '-d',
      '--build',
      'web',
    ]);
    // the override never lands in the worktree (the agent's commits must not pick it up)
    expect(overridePath.startsWith(await worktreeOf(env, t.id))).toBe(false);
    const overrideText = upCall.files[overridePath]!;
    expect(overrideText).toMatch(/web:[\s\S]*ports: !reset \[\]/);
    expect(overrideText).toMatch(/db:\n\s+ports: !reset \[\]\n\s+container_name: !reset null/);
    const override = parseYaml(overrideText, { customTags: YAML_TAGS }) as {
      services: Record<string, { labels: Record<string, string>; networks: Record<string, unknown> }>;
      networks: Record<string, unknown>;
    };
    const labels = override.services.web!.labels;
    const router = `traefik.http.routers.factory-task-${t.id}`;
    expect(labels).toMatchObject({
      'factory.task-id': String(t.id),
      'factory.repo': 'acme/web',
      'factory.env-type': 'test',
      'factory.instance': await managerOf(env).instanceId(),
      'traefik.enable': 'true',
      'traefik.docker.network': 'traefik',
      [`${router}.rule`]: `Host(\`task-${t.id}.${DOMAIN}\`)`,
      [`${router}.entrypoints`]: 'websecure',
      [`${router}.tls`]: 'true',
      [`${router}.tls.certresolver`]: 'letsencrypt',
      [`traefik.http.services.factory-task-${t.id}.loadbalancer.server.port`]: '3000',
    });
    expect(labels).not.toHaveProperty('factory.pr-number');
    expect(Date.parse(labels['factory.created-at']!)).not.toBeNaN();
    expect(Object.keys(override.services.web!.networks)).toEqual(['default', 'traefik']);
    expect(override.networks).toEqual({ traefik: { external: true, name: 'traefik' } });

    // what the (fake) engine made of it: the agent's label kept, no host port, on the shared network
    const [web] = d.read().projects[`factory-task-${t.id}`]!.containers;
    expect(web!.labels['app.owner']).toBe('agent');
    expect(web!.labels['factory.task-id']).toBe(String(t.id));
    expect(web!.ports).toEqual([]);
    expect(web!.networks).toContain('traefik');

    // listed for the agent, for the operator and on the upstream route
    const mine = (await env.app.inject({ url: `/api/tasks/${t.id}/environments` })).json();
    expect(mine.map((e: { project: string }) => e.project)).toEqual([`factory-task-${t.id}`]);
    const all = (await env.app.inject({ url: '/api/environments' })).json();
    const listed = all.find((e: { task_id: number }) => e.task_id === t.id);
    expect(listed).toMatchObject({ env_type: 'test', url: body.url, status: 'running' });
    expect(listed.age_seconds).toBeGreaterThanOrEqual(0);
    const upstream = (await env.app.inject({ url: '/api/preview-environments' })).json();
    expect(upstream.find((e: { task_id: string }) => e.task_id === String(t.id))).toMatchObject({
      env_type: 'test',
      url: body.url,
      health: 'healthy',
    });
    // a test environment is not a preview
    expect(previews.filter((p) => p.taskId === t.id)).toEqual([]);
    expect((await env.services.tasks.get(t.id))!.preview_url).toBe('');

    await cancel(env, t.id);
    await waitFor(() => !d.read().projects[`factory-task-${t.id}`], { what: 'test environment torn down' });
    const down = d.calls().find((c) => c.argv.includes('down') && c.argv.includes(`factory-task-${t.id}`))!;
    expect(down.argv.slice(-3)).toEqual(['down', '-v', '--remove-orphans']);
    await waitFor(
      async () => (await env.app.inject({ url: '/api/environments' })).json().every((e: { task_id: number }) => e.task_id !== t.id),
      { what: 'row closed' },
    );
    const history = (await env.app.inject({ url: `/api/environments?all=true&task_id=${t.id}` })).json();
    expect(history[0]).toMatchObject({ status: 'removed' });
    expect(history[0].removed_at).toBeTruthy();
  });

  it('validates the request: 400 naming the field, 404 for an unknown task, 409 unless the task is running', async () => {
    const t = await hungTask(env);
    await writeCompose(env, t.id);
    writeFileSync(path.join(path.dirname(await worktreeOf(env, t.id)), 'outside.yml'), COMPOSE);
    const bad: Array<[Record<string, unknown>, string, RegExp?]> = [
      [{ port: 0 }, 'port'],
      [{ port: 70000 }, 'port'],
      [{ port: 'http' }, 'port'],
      [{ port: 3.5 }, 'port'],
      [{ service: '-web' }, 'service'],
      [{ service: 'a b' }, 'service'],
      [{ service: '' }, 'service'],
      [{ service: 'nope' }, 'service', /not defined in docker-compose\.yml \(services: web, db\)/],
      [{ compose: '/etc/passwd' }, 'compose', /absolute/],
      [{ compose: '../outside.yml' }, 'compose', /\.\./],
      [{ compose: 'sub/../../outside.yml' }, 'compose'],
      [{ compose: 'missing.yml' }, 'compose', /does not exist/],
      [{ preview: 'yes' }, 'preview'],
      [{ health_path: 'health' }, 'health_path'],
    ];
    for (const [payload, field, msg] of bad) {
      const res = await upReq(env, t.id, payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error.field, JSON.stringify(payload)).toBe(field);
      if (msg) expect(res.json().error.message).toMatch(msg);
    }
    expect(
      (
        await env.app.inject({
          method: 'POST',
          url: `/api/tasks/${t.id}/environments`,
          payload: { compose: 'docker-compose.yml', port: 3000 },
        })
      ).json().error.field,
    ).toBe('service');
    expect((await upReq(env, 999_999, {})).statusCode).toBe(404);
    const queued = await env.createTask({ title: 'not running' }, false);
    const res = await upReq(env, queued.id, {});
    expect(res.statusCode).toBe(409);
    expect(res.json().error.message).toMatch(/queued/);
    expect((await env.app.inject({ method: 'DELETE', url: '/api/environments/424242' })).statusCode).toBe(404);
    expect((await env.app.inject({ method: 'DELETE', url: '/api/preview-environments/abc' })).json().detail).toBe(
      'Container abc not found or not a Factory container',
    );
    await cancel(env, t.id);
  });

  it('fails with the logs tail when the service is unhealthy or the build fails, and tears the project down', async () => {
    const t = await hungTask(env);
    await writeCompose(env, t.id, COMPOSE.replace('- app.owner=agent', '- fake.health=unhealthy'));
    const res = await upReq(env, t.id, {});
    expect(res.statusCode).toBe(502);
    const err = res.json().error;
    expect(err.code).toBe('environment_failed');
    expect(err.message).toMatch(/health check of web reports unhealthy/);
    expect(err.message).toMatch(/logs of web \(tail\):[\s\S]*ECONNREFUSED/);
    expect(d.read().projects[`factory-task-${t.id}`]).toBeUndefined();
    const [row] = (await env.app.inject({ url: `/api/tasks/${t.id}/environments?all=true` })).json();
    expect(row).toMatchObject({ status: 'failed' });
    expect(row.last_error).toMatch(/ECONNREFUSED/);

    await writeCompose(env, t.id, COMPOSE.replace('- app.owner=agent', '- fake.up=fail'));
    const broken = await upReq(env, t.id, {});
    expect(broken.statusCode).toBe(502);
    expect(broken.json().error.message).toMatch(/docker compose up failed \(exit code 17\)[\s\S]*npm ci/);

    // the same switch for every container, flipped at run time
    await writeCompose(env, t.id);
    d.setControl({ unhealthy: true });
    try {
      expect((await upReq(env, t.id, {})).statusCode).toBe(502);
    } finally {
      d.setControl({});
    }
    expect((await upReq(env, t.id, {})).statusCode).toBe(201);
    await cancel(env, t.id);
    await waitFor(() => !d.read().projects[`factory-task-${t.id}`], { what: 'torn down' });
  });

  it('without a health check, waits for HTTP 2xx on the service port', async () => {
    let status = 503;
    const server: Server = createServer((_req, res) => {
      res.statusCode = status;
      res.end('hi');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const t = await hungTask(env);
      await writeCompose(env, t.id, 'services:\n  api:\n    build: .\n');
      const slow = await upReq(env, t.id, { service: 'api', port, health_path: '/healthz' });
      expect(slow.statusCode).toBe(502);
      expect(slow.json().error.message).toMatch(
        new RegExp(`not healthy within 2 s \\(last: http://127\\.0\\.0\\.1:${port}/healthz answered 503\\)`),
      );
      status = 200;
      const ok = await upReq(env, t.id, { service: 'api', port });
      expect(ok.statusCode, ok.body).toBe(201);
      expect(ok.json()).toMatchObject({ health: 'http', status: 'running' });
      // the generated route points Traefik at the port the agent named
      const upCall = d
        .calls()
        .filter((c) => c.argv.includes('up') && c.argv.includes(`factory-task-${t.id}`))
        .at(-1)!;
      expect(upCall.files[upCall.argv[upCall.argv.lastIndexOf('-f') + 1]!]).toContain(`loadbalancer.server.port: "${port}"`);
      // DELETE by our id (operator)
      const del = await env.app.inject({ method: 'DELETE', url: `/api/environments/${ok.json().id}` });
      expect(del.statusCode).toBe(200);
      expect(del.json()).toMatchObject({ status: 'removed', environment: { status: 'removed' } });
      expect(d.read().projects[`factory-task-${t.id}`]).toBeUndefined();
      await cancel(env, t.id);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('previews: preview-task-<id> before a PR, pr-<n> after; announced once; removed when the PR is merged', async () => {
    // before a PR exists
    const a = await hungTask(env, { plane_issue_id: 'iss-early' });
    await writeCompose(env, a.id);
    const first = await upReq(env, a.id, { preview: true });
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json()).toMatchObject({
      env_type: 'preview',
      project: `factory-preview-task-${a.id}`,
      url: `https://preview-task-${a.id}.${DOMAIN}`,
    });
    expect((await upReq(env, a.id, { preview: true })).statusCode).toBe(201); // again: same URL, no second notice
    expect(previews.filter((p) => p.taskId === a.id)).toEqual([{ taskId: a.id, url: first.json().url }]);
    expect((await env.services.tasks.get(a.id))!.preview_url).toBe(first.json().url);
    await tg.waitFor((r) => r.path.endsWith('/sendMessage') && String(r.form?.text ?? r.json ?? '').includes(`preview-task-${a.id}.`));
    // the task ends without a PR: nothing to wait for
    await cancel(env, a.id);
    await waitFor(async () => (await liveRows(env, a.id)).length === 0, { what: 'PR-less preview removed' });
    expect(d.read().projects[`factory-preview-task-${a.id}`]).toBeUndefined();

    // a task that opened PR #n, then a revision task on the same PR (revision mode copies pr_number)
    const b = await env.createTask({ title: 'Preview base', plane_issue_id: 'iss-pr' });
    const done = await env.waitStatus(b.id, ['in_review', 'failed']);
    expect(done.status).toBe('in_review');
    const n = done.pr_number as number;
    expect(n).toBeGreaterThan(0);
    const c = await hungTask(env, { plane_issue_id: 'iss-pr' });
    expect((await env.services.tasks.get(c.id))!.pr_number).toBe(n);
    await writeCompose(env, c.id);
    const pv = await upReq(env, c.id, { preview: true });
    expect(pv.statusCode, pv.body).toBe(201);
    expect(pv.json()).toMatchObject({ project: `factory-pr-${n}`, url: `https://pr-${n}.${DOMAIN}`, pr_number: n });
    const upCall = d.calls().find((x) => x.argv.includes('up') && x.argv.includes(`factory-pr-${n}`))!;
    const labels = (
      parseYaml(upCall.files[upCall.argv[upCall.argv.lastIndexOf('-f') + 1]!]!, { customTags: YAML_TAGS }) as {
        services: { web: { labels: Record<string, string> } };
      }
    ).services.web.labels;
    expect(labels).toMatchObject({
      'factory.env-type': 'preview',
      'factory.pr-number': String(n),
      'factory.task-id': String(c.id),
      [`traefik.http.routers.factory-pr-${n}.rule`]: `Host(\`pr-${n}.${DOMAIN}\`)`,
    });
    const test = await upReq(env, c.id, {});
    expect(test.json().project).toBe(`factory-task-${c.id}`);
    expect(Object.keys(d.read().projects).sort()).toEqual([`factory-pr-${n}`, `factory-task-${c.id}`]);
    expect(previews.filter((p) => p.taskId === c.id)).toEqual([{ taskId: c.id, url: `https://pr-${n}.${DOMAIN}` }]);
    expect((await env.services.tasks.get(c.id))!.preview_url).toBe(`https://pr-${n}.${DOMAIN}`);

    // the task ends: its test environment goes, the preview stays while the PR is open
    await cancel(env, c.id);
    await waitFor(async () => (await liveRows(env, c.id)).every((r) => r.env_type === 'preview'), { what: 'test env removed' });
    expect(d.read().projects[`factory-task-${c.id}`]).toBeUndefined();
    expect(await managerOf(env).pollPreviews()).toEqual([]);
    expect(d.read().projects[`factory-pr-${n}`]).toBeDefined();

    env.github.setPrState(n, 'closed', true);
    const removed = await managerOf(env).pollPreviews();
    expect(removed.map((r) => r.project)).toEqual([`factory-pr-${n}`]);
    expect(d.read().projects[`factory-pr-${n}`]).toBeUndefined();
    expect(d.calls().some((x) => x.argv.includes(`factory-pr-${n}`) && x.argv.includes('down'))).toBe(true);

    // exactly one Telegram notice per preview URL
    await tg.waitFor((r) => r.path.endsWith('/sendMessage') && String(r.form?.text ?? '').includes(`pr-${n}.${DOMAIN}`));
    const sent = (host: string) => tg.sent.filter((m) => m.text.includes(host)).length;
    expect(sent(`pr-${n}.${DOMAIN}`)).toBe(1);
    expect(sent(`preview-task-${a.id}.${DOMAIN}`)).toBe(1);
  });

  it('removes a preview older than docker.preview_max_age_hours at the next poll', async () => {
    const t = await hungTask(env);
    await writeCompose(env, t.id);
    const up = await upReq(env, t.id, { preview: true });
    expect(up.statusCode, up.body).toBe(201);
    expect(await managerOf(env).pollPreviews()).toEqual([]);
    const old = new Date(Date.now() - (env.config.docker.preview_max_age_hours + 1) * 3_600_000).toISOString();
    await env.services.db.run('UPDATE environments SET created_at = ? WHERE id = ?', old, up.json().id);
    expect((await managerOf(env).pollPreviews()).map((r) => r.project)).toEqual([`factory-preview-task-${t.id}`]);
    expect(d.read().projects[`factory-preview-task-${t.id}`]).toBeUndefined();
    await cancel(env, t.id);
  });

  it("leaves another host's environments to that host: no teardown, poll or removal from here", async () => {
    const t = await hungTask(env);
    await writeCompose(env, t.id);
    const up = await upReq(env, t.id, {});
    expect(up.statusCode, up.body).toBe(201);
    expect(up.json().machine).toBe(hostname());
    const project = `factory-task-${t.id}`;
    // As if a worker on another host had started it (several hosts share one PostgreSQL).
    await env.services.db.run('UPDATE environments SET machine = ? WHERE id = ?', 'worker-b', up.json().id);
    await cancel(env, t.id);
    expect(await managerOf(env).pollPreviews()).toEqual([]);
    expect(d.read().projects[project]).toBeDefined();
    expect(await liveRows(env, t.id)).toHaveLength(1);
    const del = await env.app.inject({ method: 'DELETE', url: `/api/environments/${up.json().id}` });
    expect(del.statusCode).toBe(409);
    expect(del.json().detail).toMatch(/runs on worker-b, not on this host/);
    // Back on this host, the next poll removes it (its task has ended).
    await env.services.db.run('UPDATE environments SET machine = ? WHERE id = ?', hostname(), up.json().id);
    expect((await managerOf(env).pollPreviews()).map((r) => r.project)).toEqual([project]);
    expect(d.read().projects[project]).toBeUndefined();
  });

  it('Docker down: a clear 503 for the agent; tasks without environments are unaffected', async () => {
    const t = await hungTask(env);
    await writeCompose(env, t.id);
    d.setControl({ down: true });
    try {
      const res = await upReq(env, t.id, {});
      expect(res.statusCode).toBe(503);
      expect(res.json().error.code).toBe('docker_unavailable');
      expect(res.json().error.message).toMatch(/Docker daemon on the Factory host is not reachable \(Cannot connect to the Docker daemon/);
      const health = (await env.app.inject({ url: '/health' })).json();
      expect(health.docker).toMatchObject({ available: false });
      // a task that never asked for an environment finishes as usual
      const plain = await env.createTask({ title: 'No docker needed' });
      expect((await env.waitStatus(plain.id, ['in_review', 'failed'])).status).toBe('in_review');
      await cancel(env, t.id);
    } finally {
      d.setControl({});
    }
    expect(d.read().projects[`factory-task-${t.id}`]).toBeUndefined();
  });
});

describe('boot-time cleanup', () => {
  it('tears down the projects of finished or unknown tasks at start and keeps the rest', async () => {
    const dir = tempDir('factory-env-boot-');
    const d = dockerFiles(dir);
    const github = new FakeGitHub({ validToken: GITHUB_TOKEN });
    await github.start();
    const env1 = await createAgentEnv({ dir, github, overrides: { ...d.overrides(), shutdown: { grace_seconds: 0 } } });
    let finishedId: number;
    let keptId: number;
    let vanishedId: number;
    const instance = await managerOf(env1).instanceId();
    try {
      const finished = await env1.createTask({ title: 'finished', description: '[fake:noop]' });
      finishedId = finished.id;
      await env1.waitStatus(finishedId, ['done', 'in_review']);
      const kept = await hungTask(env1);
      keptId = kept.id;
      await writeCompose(env1, keptId);
      expect((await upReq(env1, keptId, {})).statusCode).toBe(201);
      const vanished = await hungTask(env1);
      vanishedId = vanished.id;
      await writeCompose(env1, vanishedId);
      expect((await upReq(env1, vanishedId, {})).statusCode).toBe(201);
    } finally {
      // a shutdown hands running tasks to the next start (queued); their environments stay
      await env1.close();
    }
    // Containers left behind by a crash: a finished task's, an unknown task's; one project removed by hand.
    const s = d.read();
    const orphan = (project: string, taskId: number | string, type = 'test', owner = instance): { containers: FakeContainer[] } => ({
      containers: [
        {
          id: `${project}-0123456789abcdef`.replace(/[^a-f0-9]/g, 'a').padEnd(64, '0'),
          name: `${project}-web-1`,
          service: 'web',
          project,
          ports: [],
          networks: ['traefik'],
          health: 'healthy',
          state: 'running',
          labels: {
            'factory.task-id': String(taskId),
            'factory.env-type': type,
            'factory.instance': owner,
            'com.docker.compose.project': project,
            'com.docker.compose.service': 'web',
          },
        },
      ],
    });
    s.projects[`factory-task-${finishedId!}`] = orphan(`factory-task-${finishedId!}`, finishedId!);
    s.projects['factory-task-987654'] = orphan('factory-task-987654', 987654);
    s.projects['factory-pr-4242'] = orphan('factory-pr-4242', 987654, 'preview');
    // another Factory installation (or a test run) on the same daemon: not ours to touch
    s.projects['factory-task-555555'] = orphan('factory-task-555555', 555555, 'test', 'other-instance');
    delete s.projects[`factory-task-${vanishedId!}`];
    d.write(s);
    const before = d.calls().length;

    const env2 = await createAgentEnv({ dir, github, overrides: { ...d.overrides(), shutdown: { grace_seconds: 0 } } });
    try {
      // start() has run: the cleanup happened before the queue started
      const left = Object.keys(d.read().projects).sort();
      expect(left).toEqual(['factory-task-555555', `factory-task-${keptId!}`].sort());
      const downs = d
        .calls()
        .slice(before)
        .filter((c) => c.argv.includes('down'))
        .map((c) => c.argv[2])
        .sort();
      expect(downs).toEqual([`factory-pr-4242`, `factory-task-${finishedId!}`, 'factory-task-987654'].sort());
      const rows = (await env2.app.inject({ url: '/api/environments?all=true' })).json();
      expect(rows.find((r: { task_id: number }) => r.task_id === keptId!)).toMatchObject({ status: 'running', removed_at: null });
      expect(rows.find((r: { task_id: number }) => r.task_id === vanishedId!)).toMatchObject({
        status: 'removed',
        last_error: 'its containers were gone when Factory started',
      });
    } finally {
      await env2.stopAll();
      await github.stop();
    }
  });
});

describe('factory-env CLI and task tokens', () => {
  const MASTER = 'tok-1234567890';
  let env: AgentEnv;
  let d: ReturnType<typeof dockerFiles>;
  let base: string;

  beforeAll(async () => {
    const dir = tempDir('factory-env-cli-');
    d = dockerFiles(dir);
    env = await createAgentEnv({ dir, env: { FACTORY_AUTH_TOKEN: MASTER }, overrides: d.overrides() });
    base = await env.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await env?.stopAll();
  });

  const cli = async (args: string[], o: { cwd: string; taskId: number | string; token?: string }) => {
    try {
      const r = await run(process.execPath, [CLI, ...args], {
        cwd: o.cwd,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          FACTORY_API_URL: base,
          FACTORY_TASK_ID: String(o.taskId),
          ...(o.token ? { FACTORY_API_TOKEN: o.token } : {}),
        },
      });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
  const api = (url: string, token?: string, method = 'GET') =>
    env.app.inject({ method: method as 'GET', url, headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('up / status / down from a subdirectory of the worktree, with the task token', async () => {
    const t = await hungTask(env, {}, MASTER);
    await writeCompose(env, t.id);
    const sub = path.join(await worktreeOf(env, t.id), 'src');
    mkdirSync(sub, { recursive: true });
    const token = env.services.taskTokens.issue(t.id);

    const up = await cli(['up', '--compose', '../docker-compose.yml', '--service', 'web', '--port', '3000'], {
      cwd: sub,
      taskId: t.id,
      token,
    });
    expect(up.stderr).toContain(`factory-task-${t.id} is up`);
    expect(up.code).toBe(0);
    expect(up.stdout).toBe(`https://task-${t.id}.${DOMAIN}\n`);
    const upCall = d.calls().find((c) => c.argv.includes('up'))!;
    expect(upCall.argv[4]).toBe(path.join(await worktreeOf(env, t.id), 'docker-compose.yml'));

    const status = await cli(['status'], { cwd: sub, taskId: t.id, token });
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(
      new RegExp(`^test +running +https://task-${t.id}\\.${DOMAIN.replace(/\./g, '\\.')} +web:3000 +factory-task-${t.id}`),
    );

    // the task token opens only its own task's environment routes
    const other = await hungTask(env, {}, MASTER);
    const foreign = await cli(['status'], { cwd: sub, taskId: other.id, token });
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/factory-env: missing or invalid bearer token .*\(HTTP 401\)/);
    expect((await api(`/api/tasks/${t.id}/environments`, token)).statusCode).toBe(200);
    expect((await api('/api/environments', token)).statusCode).toBe(401);
    expect((await api(`/api/tasks/${t.id}`, token)).statusCode).toBe(401);
    expect((await api(`/api/tasks/${t.id}/environments`)).statusCode).toBe(401);
    expect((await api('/api/environments', MASTER)).json()).toHaveLength(1);
    expect((await api('/api/preview-environments', MASTER)).statusCode).toBe(200);

    // errors from the server reach stderr with exit 1
    const bad = await cli(['up', '--compose', 'nope.yml', '--service', 'web', '--port', '3000'], {
      cwd: await worktreeOf(env, t.id),
      taskId: t.id,
      token,
    });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/compose: nope\.yml does not exist in the task worktree \(HTTP 400\)/);
    const usage = await cli(['up', '--service', 'web'], { cwd: sub, taskId: t.id, token });
    expect(usage.code).toBe(1);
    expect(usage.stderr).toMatch(/up needs --port/);
    const help = await cli(['--help'], { cwd: sub, taskId: t.id });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/factory-env up \[--compose <file>\] --service <name> --port <port> \[--preview\]/);

    const down = await cli(['down'], { cwd: sub, taskId: t.id, token });
    expect(down.code).toBe(0);
    expect(down.stdout).toBe(`removed factory-task-${t.id} (test)\n`);
    expect(d.read().projects[`factory-task-${t.id}`]).toBeUndefined();
    expect((await cli(['status'], { cwd: sub, taskId: t.id, token })).stdout).toBe('no environments\n');

    await cancel(env, other.id, MASTER);
    await cancel(env, t.id, MASTER);
  });

  it('says where it must run when the environment is missing', async () => {
    const r = await run(process.execPath, [CLI, 'status'], { env: { PATH: process.env.PATH ?? '' } }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((r as { code: number }).code).toBe(1);
    expect((r as { stderr: string }).stderr).toMatch(/FACTORY_API_URL is not set/);
  });
});

describe('environment units', () => {
  it('names projects and hosts from ids only', () => {
    expect(naming('test', 12, 7)).toEqual({ project: 'factory-task-12', hostLabel: 'task-12' });
    expect(naming('preview', 12, 7)).toEqual({ project: 'factory-pr-7', hostLabel: 'pr-7' });
    expect(naming('preview', 12, null)).toEqual({ project: 'factory-preview-task-12', hostLabel: 'preview-task-12' });
    expect(naming('preview', 12, 7, 'acme-api')).toEqual({ project: 'factory-pr-7-acme-api', hostLabel: 'pr-7-acme-api' });
  });

  it('keeps compose paths inside the worktree, also through symlinks', async () => {
    const { symlinkSync } = await import('node:fs');
    const wt = tempDir('factory-wt-');
    const outside = tempDir('factory-out-');
    writeFileSync(path.join(outside, 'c.yml'), COMPOSE);
    writeFileSync(path.join(wt, 'docker-compose.yml'), COMPOSE);
    symlinkSync(path.join(outside, 'c.yml'), path.join(wt, 'link.yml'));
    expect(resolveComposePath(wt, './docker-compose.yml').relative).toBe('docker-compose.yml');
    expect(() => resolveComposePath(wt, 'link.yml')).toThrow(/points outside the task worktree/);
    expect(() => resolveComposePath(wt, '.')).toThrow(/must name a file/);
  });

  it('parses docker ps labels, including values with commas', () => {
    expect(parsePsLabels('a=1,traefik.http.routers.x.rule=Host(`a`) || Host(`b`),b=2')).toEqual({
      a: '1',
      'traefik.http.routers.x.rule': 'Host(`a`) || Host(`b`)',
      b: '2',
    });
    expect(parsePsLabels('x=1,2,y=3')).toEqual({ x: '1,2', y: '3' });
  });

  it('reports a missing docker command as unavailable (503)', async () => {
    const cli = new DockerCli({ command: path.join(tempDir(), 'no-docker'), env: { PATH: process.env.PATH ?? '' }, cwd: tempDir() });
    const err: unknown = await cli.ensureAvailable().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      kind: 'unavailable',
      code: 'docker_unavailable',
      message: expect.stringMatching(/Docker is not installed on the Factory host/),
    });
    // The HTTP layer's one mapping turns it into a 503.
    expect(callerError(err)).toMatchObject({ status: 503, code: 'docker_unavailable' });
  });
});
