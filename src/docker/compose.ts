// Pure helpers for environments: names, host names, the compose path check and the override file.
import { existsSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { Document, isSeq, parse as parseYaml, type Scalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { DomainError } from '../errors.js';
import type { EnvType } from '../db/repositories/environments.js';

export const SERVICE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface Naming {
  project: string;
  /** Host name label, without the domain: task-12, pr-7, preview-task-12. */
  hostLabel: string;
}

/**
 * Compose project and host name of an environment, derived from ids only so parallel tasks never collide.
 * `suffix` disambiguates a PR number shared by two repositories.
 */
export function naming(type: EnvType, taskId: number, prNumber: number | null, suffix = ''): Naming {
  const base = type === 'test' ? `task-${taskId}` : prNumber ? `pr-${prNumber}` : `preview-task-${taskId}`;
  const label = suffix ? `${base}-${suffix}` : base;
  return { project: `factory-${label}`, hostLabel: label };
}

/** A repository name as a DNS label part: lowercase letters, digits and single hyphens, at most 30 characters. */
export function dnsPart(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 30)
      .replace(/-+$/, '') || 'repo'
  );
}

const badPath = (message: string) => new DomainError('invalid', 'invalid_input', `compose: ${message}`, 'compose');

/**
 * Checks a compose path given relative to the worktree: no absolute path, no `..`, and (after symlinks)
 * still inside the worktree. Returns the normalised relative path and the absolute one.
 */
export function resolveComposePath(worktree: string, compose: string): { relative: string; absolute: string } {
  if (compose.includes('\0')) throw badPath('must not contain NUL characters');
  if (path.isAbsolute(compose) || /^[a-zA-Z]:[\\/]/.test(compose))
    throw badPath('must be a path relative to the task worktree, not an absolute path');
  const parts = compose.split(/[\\/]+/);
  if (parts.includes('..')) throw badPath('must stay inside the task worktree (".." is not allowed)');
  const relative = path.normalize(compose);
  if (relative === '.' || relative === '') throw badPath('must name a file');
  const absolute = path.join(worktree, relative);
  if (!existsSync(absolute)) throw badPath(`${relative} does not exist in the task worktree`);
  let real: string;
  let root: string;
  try {
    real = realpathSync(absolute);
    root = realpathSync(worktree);
  } catch {
    throw badPath(`${relative} cannot be read`);
  }
  if (real !== root && !real.startsWith(root + path.sep)) throw badPath(`${relative} points outside the task worktree`);
  if (!statSync(real).isFile()) throw badPath(`${relative} is not a file`);
  return { relative, absolute };
}

export interface ComposeInfo {
  /** Services of the file and whether each publishes ports / sets a fixed container name / has networks. */
  services: Map<string, { ports: boolean; containerName: boolean; networks: boolean }>;
  /** The file pulls in others (`include:`): services may be defined elsewhere. */
  hasInclude: boolean;
}

/** Reads the agent's compose file just enough to build the override (never interpolated, never run). */
export function inspectCompose(text: string): ComposeInfo {
  let doc: unknown;
  try {
    // Compose's own tags (!reset, !override) are kept as plain values here.
    doc = parseYaml(text, {
      logLevel: 'silent',
      customTags: [resetTag('!reset'), resetTag('!override'), resetTag('!reset', 'seq'), resetTag('!override', 'seq')],
    });
  } catch (err) {
    throw badPath(`is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw badPath('is not a compose file (expected a mapping with `services:`)');
  const root = doc as Record<string, unknown>;
  const services = new Map<string, { ports: boolean; containerName: boolean; networks: boolean }>();
  const svcs = root.services;
  if (svcs && typeof svcs === 'object' && !Array.isArray(svcs)) {
    for (const [name, def] of Object.entries(svcs as Record<string, unknown>)) {
      const d = (def && typeof def === 'object' ? def : {}) as Record<string, unknown>;
      checkConfinement(name, d);
      services.set(name, {
        ports: Array.isArray(d.ports) ? d.ports.length > 0 : d.ports !== undefined && d.ports !== null,
        containerName: typeof d.container_name === 'string' && d.container_name !== '',
        networks: d.networks !== undefined && d.networks !== null,
      });
    }
  }
  return { services, hasInclude: root.include !== undefined };
}

/**
 * An agent's compose file runs with the Docker daemon's rights, which are root on the host. Settings that
 * would hand the host to a container are refused: privileged mode, host namespaces, extra capabilities,
 * devices, and bind mounts of paths outside the project folder (absolute paths, `..`, `~`, the socket).
 */
function checkConfinement(service: string, d: Record<string, unknown>): void {
  const refuse = (what: string) => {
    throw badPath(`service ${service}: ${what} is not allowed in Factory environments`);
  };
  if (d.privileged === true) refuse('privileged: true');
  for (const key of ['network_mode', 'pid', 'ipc', 'userns_mode', 'uts']) {
    if (typeof d[key] === 'string' && /^host$|^container:/.test(d[key] as string)) refuse(`${key}: ${String(d[key])}`);
  }
  if (d.cap_add !== undefined) refuse('cap_add');
  if (d.devices !== undefined) refuse('devices');
  if (d.security_opt !== undefined) refuse('security_opt');
  const volumes = Array.isArray(d.volumes) ? d.volumes : [];
  for (const v of volumes) {
    const source =
      typeof v === 'string'
        ? (v.split(':')[0] ?? '')
        : v && typeof v === 'object'
          ? String((v as Record<string, unknown>).source ?? '')
          : '';
    const type = v && typeof v === 'object' ? String((v as Record<string, unknown>).type ?? '') : '';
    const isPath = source.startsWith('/') || source.startsWith('.') || source.startsWith('~') || type === 'bind';
    if (isPath && (source.startsWith('/') || source.startsWith('~') || source.split(/[\\/]+/).includes('..'))) {
      refuse(`the bind mount ${source}`);
    }
  }
}

function resetTag(tag: string, collection?: 'map' | 'seq') {
  return collection ? { tag, collection, resolve: (v: YAMLMap | YAMLSeq) => v.toJSON() as unknown } : { tag, resolve: (v: string) => v };
}

export interface OverrideInput {
  project: string;
  service: string;
  port: number;
  host: string;
  labels: Record<string, string>;
  network: string;
  entrypoint: string;
  certResolver: string;
  compose: ComposeInfo;
}

/** Our labels plus the Traefik router for the service; the router is named after the project (unique). */
export function traefikLabels(
  i: Pick<OverrideInput, 'project' | 'port' | 'host' | 'network' | 'entrypoint' | 'certResolver'>,
): Record<string, string> {
  const r = i.project;
  return {
    'traefik.enable': 'true',
    'traefik.docker.network': i.network,
    [`traefik.http.routers.${r}.rule`]: `Host(\`${i.host}\`)`,
    [`traefik.http.routers.${r}.entrypoints`]: i.entrypoint,
    [`traefik.http.routers.${r}.tls`]: 'true',
    ...(i.certResolver ? { [`traefik.http.routers.${r}.tls.certresolver`]: i.certResolver } : {}),
    [`traefik.http.routers.${r}.service`]: r,
    [`traefik.http.services.${r}.loadbalancer.server.port`]: String(i.port),
  };
}

/**
 * The override layered over the agent's compose file (`-f theirs -f ours`). Compose merges `labels`
 * by key, so the agent's own labels stay. Published host ports are dropped with `ports: !reset []`
 * on every service that has them (Compose 2.24+), so parallel environments never clash on a port and
 * are reached only through Traefik; fixed `container_name`s are dropped the same way.
 */
export function buildOverride(i: OverrideInput): string {
  const doc = new Document({});
  const services: Record<string, unknown> = {
    [i.service]: {
      labels: { ...i.labels, ...traefikLabels(i) },
      // Listing only our network would detach the service from the project's default network.
      networks: i.compose.services.get(i.service)?.networks ? { [i.network]: {} } : { default: {}, [i.network]: {} },
    },
  };
  const resets: Array<[string, 'ports' | 'container_name']> = [];
  for (const [name, s] of i.compose.services) {
    if (s.ports) resets.push([name, 'ports']);
    if (s.containerName) resets.push([name, 'container_name']);
    if (s.ports || s.containerName) services[name] ??= {};
  }
  doc.contents = doc.createNode({
    services,
    networks: { [i.network]: { external: true, name: i.network } },
  }) as never;
  for (const [name, key] of resets) {
    const node = doc.createNode(key === 'ports' ? [] : null) as YAMLSeq | Scalar;
    node.tag = '!reset';
    if (isSeq(node)) node.flow = true;
    doc.setIn(['services', name, key], node);
  }
  doc.commentBefore = ` Generated by Factory for compose project ${i.project}. Rewritten on every factory-env up; do not edit.`;
  return doc.toString({ lineWidth: 0 });
}
