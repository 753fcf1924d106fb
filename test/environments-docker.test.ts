// Opt-in: a tiny compose file run for real through a real Docker daemon (FACTORY_DOCKER_TESTS=1).
// Skipped, with the reason in the test name, when not asked for or when `docker info` fails.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentEnv, type AgentEnv } from './agent-harness.js';
import { waitFor } from './helpers.js';

function dockerReady(): { ok: boolean; reason: string } {
  if (process.env.FACTORY_DOCKER_TESTS !== '1')
    return { ok: false, reason: 'set FACTORY_DOCKER_TESTS=1 to run it against the local Docker daemon' };
  try {
    execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    execFileSync('docker', ['compose', 'version'], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    return { ok: true, reason: '' };
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer; message: string };
    const why = e.code === 'ENOENT' ? 'docker is not installed' : e.stderr?.toString().trim().split('\n')[0] || e.message;
    return { ok: false, reason: `docker info failed: ${why}` };
  }
}

const ready = dockerReady();
// The reason also goes to the report's stderr: a skipped block's title is not shown by the default reporter.
if (!ready.ok) console.warn(`real Docker integration test skipped: ${ready.reason}`);
const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8', timeout: 120_000 }).trim();

const COMPOSE = `services:
  web:
    image: busybox:1.36
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: ["18080:8080"]
    labels:
      - app.owner=agent
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 30
`;

describe.skipIf(!ready.ok)(`real Docker daemon${ready.ok ? '' : ` (skipped: ${ready.reason})`}`, () => {
  const network = `factory-it-${process.pid}`;
  let env: AgentEnv;

  beforeAll(async () => {
    docker('network', 'create', network);
    env = await createAgentEnv({
      overrides: { docker: { network, domain: 'preview.localhost', health_timeout_seconds: 120 }, shutdown: { grace_seconds: 0 } },
    });
  });
  afterAll(async () => {
    await env?.stopAll();
    try {
      docker('network', 'rm', network);
    } catch {
      /* still in use or already gone */
    }
  });

  it('runs a compose service with our labels, no published port, on the shared network; removes it when the task ends', async () => {
    const res = await env.app.inject({
      method: 'POST',
      url: '/api/tasks?auto_run=true',
      payload: { repo: 'acme/web', title: 'real docker', description: '[fake:hang]' },
    });
    const id = res.json().id as number;
    const task = await waitFor(
      async () => {
        const t = await env.services.tasks.get(id);
        return t?.status === 'in_progress' && t.worktree_path ? t : undefined;
      },
      { timeoutMs: 20_000 },
    );
    writeFileSync(path.join(task.worktree_path, 'docker-compose.yml'), COMPOSE);

    const up = await env.app.inject({
      method: 'POST',
      url: `/api/tasks/${id}/environments`,
      payload: { compose: 'docker-compose.yml', service: 'web', port: 8080 },
    });
    expect(up.statusCode, up.body).toBe(201);
    expect(up.json()).toMatchObject({ url: `https://task-${id}.preview.localhost`, status: 'running', health: 'healthy' });

    const cid = docker('ps', '-q', '--filter', `label=com.docker.compose.project=factory-task-${id}`);
    const info = JSON.parse(docker('inspect', cid))[0];
    expect(info.Config.Labels).toMatchObject({
      'factory.task-id': String(id),
      'factory.env-type': 'test',
      'app.owner': 'agent',
      'traefik.enable': 'true',
    });
    expect(Object.keys(info.NetworkSettings.Networks)).toContain(network);
    expect(Object.values(info.HostConfig.PortBindings ?? {}).flat()).toEqual([]);

    await env.app.inject({ method: 'POST', url: `/api/tasks/${id}/cancel` });
    await waitFor(() => docker('ps', '-aq', '--filter', `label=com.docker.compose.project=factory-task-${id}`) === '', {
      timeoutMs: 120_000,
      what: 'containers removed',
    });
  });
});
