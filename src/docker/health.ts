// Waiting for an environment to become healthy, and reading what `docker ps` / `docker inspect` print.
import { setTimeout as sleep } from 'node:timers/promises';
import type { DockerCli } from './docker-cli.js';

export interface HealthOptions {
  project: string;
  service: string;
  port: number;
  healthPath: string;
  network: string;
  timeoutS: number;
  pollMs: number;
  probeMs: number;
  commandMs: number;
  signal: AbortSignal;
}

/** Waits for the container's health check, or for HTTP 2xx on the service port when it has none. */
export async function waitHealthy(
  docker: DockerCli,
  o: HealthOptions,
): Promise<{ ok: true; health: string; containerId: string } | { ok: false; error: string }> {
  const { project, service, port, healthPath, timeoutS } = o;
  const deadline = Date.now() + timeoutS * 1000;
  let last = 'no container yet';
  for (;;) {
    const ids = await containerIds(docker, project, service, o.commandMs);
    if (ids.length) {
      const info = await inspect(docker, ids[0]!, o.commandMs);
      if (info) {
        const state = info.State ?? {};
        const status = String(state.Status ?? 'unknown');
        const health = state.Health?.Status as string | undefined;
        if (status === 'exited' || status === 'dead')
          return { ok: false, error: `the container of ${service} exited (exit code ${state.ExitCode ?? '?'})` };
        if (health) {
          if (health === 'healthy') return { ok: true, health, containerId: ids[0]! };
          if (health === 'unhealthy')
            return { ok: false, error: `the health check of ${service} reports unhealthy${healthLog(state.Health)}` };
          last = `health check ${health}`;
        } else if (status === 'running') {
          const ip = containerIp(info, o.network);
          if (!ip) {
            last = 'the container has no IP address';
          } else {
            const result = await probe(ip, port, healthPath, o.probeMs);
            if (result.ok) return { ok: true, health: 'http', containerId: ids[0]! };
            last = `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}${healthPath} ${result.detail}`;
          }
        } else {
          last = `container ${status}`;
        }
      }
    }
    if (Date.now() >= deadline) return { ok: false, error: `${service} was not healthy within ${timeoutS} s (last: ${last})` };
    if (o.signal.aborted) return { ok: false, error: 'Factory is shutting down' };
    await sleep(Math.min(o.pollMs, Math.max(10, deadline - Date.now())), undefined, { signal: o.signal }).catch(() => undefined);
  }
}

async function probe(ip: string, port: number, healthPath: string, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  const host = ip.includes(':') ? `[${ip}]` : ip;
  try {
    const res = await fetch(`http://${host}:${port}${healthPath}`, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
    await res.body?.cancel().catch(() => undefined);
    return { ok: res.status >= 200 && res.status < 300, detail: `answered ${res.status}` };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    return { ok: false, detail: `failed: ${cause ?? (err as Error).message}` };
  }
}

async function containerIds(docker: DockerCli, project: string, service: string, timeoutMs: number): Promise<string[]> {
  const r = await docker.run(
    [
      'ps',
      '-a',
      '--filter',
      `label=com.docker.compose.project=${project}`,
      '--filter',
      `label=com.docker.compose.service=${service}`,
      '--format',
      '{{json .}}',
    ],
    { timeoutMs },
  );
  if (!r.ok) return [];
  return parseJsonLines(r.stdout)
    .map((c) => String(c.ID ?? c.Id ?? ''))
    .filter(Boolean);
}

async function inspect(docker: DockerCli, id: string, timeoutMs: number): Promise<InspectInfo | undefined> {
  const r = await docker.run(['inspect', id], { timeoutMs });
  if (!r.ok) return undefined;
  try {
    const arr = JSON.parse(r.stdout) as InspectInfo[];
    return Array.isArray(arr) ? arr[0] : undefined;
  } catch {
    return undefined;
  }
}

interface InspectInfo {
  Id?: string;
  State?: { Status?: string; ExitCode?: number; Health?: { Status?: string; Log?: Array<{ Output?: string; ExitCode?: number }> } };
  NetworkSettings?: { IPAddress?: string; Networks?: Record<string, { IPAddress?: string; GlobalIPv6Address?: string }> };
  Config?: { Labels?: Record<string, string> };
}

function containerIp(i: InspectInfo, network: string): string | undefined {
  const nets = i.NetworkSettings?.Networks ?? {};
  const pick = (n?: { IPAddress?: string; GlobalIPv6Address?: string }) => n?.IPAddress || n?.GlobalIPv6Address || undefined;
  return pick(nets[network]) ?? Object.values(nets).map(pick).find(Boolean) ?? (i.NetworkSettings?.IPAddress || undefined);
}

function healthLog(h: { Log?: Array<{ Output?: string }> } | undefined): string {
  const out = h?.Log?.at(-1)?.Output?.trim();
  return out ? ` (last check: ${out.slice(0, 300)})` : '';
}

/** `docker ps --format '{{json .}}'` prints one object per line; some versions print one array. */
export function parseJsonLines(text: string): Array<Record<string, unknown>> {
  const t = text.trim();
  if (!t) return [];
  if (t.startsWith('[')) {
    try {
      return JSON.parse(t) as Array<Record<string, unknown>>;
    } catch {
      return [];
    }
  }
  const out: Array<Record<string, unknown>> = [];
  for (const line of t.split('\n')) {
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* not JSON: skip */
    }
  }
  return out;
}

/** Labels of `docker ps` JSON come as one "k=v,k2=v2" string (a map in some tools). */
export function parsePsLabels(v: unknown): Record<string, string> {
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)]));
  const out: Record<string, string> = {};
  if (typeof v !== 'string' || !v) return out;
  let lastKey: string | undefined;
  for (const part of v.split(',')) {
    const eq = part.indexOf('=');
    // A value that contained a comma continues the previous label.
    if (eq <= 0 || !/^[\w.\-/]+$/.test(part.slice(0, eq))) {
      if (lastKey) out[lastKey] += `,${part}`;
      continue;
    }
    lastKey = part.slice(0, eq);
    out[lastKey] = part.slice(eq + 1);
  }
  return out;
}
