// What `docker ps --format '{{json .}}'` says about one container, and the environment row of a
// preview found running with no row of its own (its labels say what it was).
import type { TaskRow } from '../db/repositories/tasks.js';
import type { EnvironmentsRepo } from '../db/repositories/environments.js';
import { parsePsLabels } from './health.js';

export interface ContainerSummary {
  id: string;
  project: string;
  service: string;
  labels: Record<string, string>;
}

export function summarize(c: Record<string, unknown>): ContainerSummary {
  const labels = parsePsLabels(c.Labels);
  return {
    id: String(c.ID ?? c.Id ?? ''),
    project: labels['com.docker.compose.project'] ?? '',
    service: labels['com.docker.compose.service'] ?? '',
    labels,
  };
}

/** The row a labelled preview gets again: host and port from its Traefik labels, PR from ours. */
export function adoptedPreview(
  project: string,
  c: ContainerSummary,
  task: TaskRow,
  machine: string,
): Parameters<EnvironmentsRepo['upsertLive']>[0] {
  const l = c.labels;
  const rule = Object.entries(l).find(([k]) => /^traefik\.http\.routers\.[^.]+\.rule$/.test(k))?.[1] ?? '';
  const host = /Host\(`([^`]+)`\)/.exec(rule)?.[1] ?? '';
  const portLabel = Object.entries(l).find(([k]) => /^traefik\.http\.services\.[^.]+\.loadbalancer\.server\.port$/.test(k))?.[1];
  const pr = Number(l['factory.pr-number']);
  return {
    task_id: task.id,
    repo: l['factory.repo'] ?? task.repo,
    project,
    env_type: 'preview',
    service: c.service || 'unknown',
    port: Number(portLabel) || 0,
    host,
    url: host ? `https://${host}` : '',
    pr_number: Number.isInteger(pr) && pr > 0 ? pr : task.pr_number,
    compose_file: '',
    override_file: '',
    worktree: '',
    machine,
  };
}
