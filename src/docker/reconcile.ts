// Boot: what Docker runs for this installation against what the table says. Containers labelled
// factory.task-id whose task has ended (or is unknown) are torn down; a preview with no row is
// tracked again; rows whose containers are gone are closed.
import type { Logger } from 'pino';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { EnvironmentsRepo } from '../db/repositories/environments.js';
import type { TaskService } from '../tasks/service.js';
import { firstLine, type DockerCli } from './docker-cli.js';
import { parseJsonLines } from './health.js';
import { adoptedPreview, summarize, type ContainerSummary } from './containers.js';
import type { EnvironmentTeardown } from './teardown.js';

/** Statuses during which a task's agent may still use its test environment. */
const ACTIVE_TASK = new Set(['queued', 'in_progress', 'waiting_for_input']);

export interface ReconcileContext {
  docker: DockerCli;
  repo: EnvironmentsRepo;
  tasks: TaskService;
  log: Logger;
  down: EnvironmentTeardown;
  /** This host: only its rows can be checked against this Docker daemon. */
  machine: string;
  commandMs: number;
  /** This installation's factory.instance label. */
  instanceId: string;
}

export async function reconcileContainers(c: ReconcileContext): Promise<void> {
  // Only this installation's containers: another Factory (or a test run) on the same daemon has its own tasks.
  const r = await c.docker.run(
    ['ps', '-a', '--filter', 'label=factory.task-id', '--filter', `label=factory.instance=${c.instanceId}`, '--format', '{{json .}}'],
    { timeoutMs: c.commandMs },
  );
  if (!r.ok) {
    c.log.warn({ error: firstLine(r.stderr) }, 'could not list Factory containers at start');
    return;
  }
  const byProject = new Map<string, ContainerSummary[]>();
  for (const c of parseJsonLines(r.stdout).map(summarize)) {
    if (!c.project) continue;
    byProject.set(c.project, [...(byProject.get(c.project) ?? []), c]);
  }
  for (const [project, containers] of byProject) {
    const labels = containers[0]!.labels;
    const taskId = Number(labels['factory.task-id']);
    const type = labels['factory.env-type'] === 'preview' ? 'preview' : 'test';
    const task = Number.isInteger(taskId) ? await c.tasks.get(taskId) : undefined;
    const row = await c.repo.liveByProject(project);
    const orphan = !task || (type === 'test' && !ACTIVE_TASK.has(task.status));
    if (orphan) {
      const why = task ? `task ${task.id} is ${task.status}` : `task ${labels['factory.task-id'] ?? '?'} is unknown`;
      if (row) {
        await c.down.teardown(row, `${why} (found at start)`);
      } else {
        const down = await c.down.downProject(project);
        if (down.ok) c.log.info({ project, reason: why }, 'orphaned environment torn down at start');
        else c.log.warn({ project, error: firstLine(down.stderr) }, 'could not tear down an orphaned environment');
      }
    } else if (!row && type === 'preview') {
      await adopt(c, project, containers[0]!, task);
    }
  }
  // Rows whose containers vanished (removed by hand, or a crash in the middle of `up`); only this
  // host's rows: this Docker daemon cannot see another host's containers.
  for (const row of (await c.repo.live()).filter((r) => !r.machine || r.machine === c.machine)) {
    if (!byProject.has(row.project)) {
      await c.repo.markRemoved(
        row.id,
        row.status === 'running' ? 'removed' : 'failed',
        row.last_error || 'its containers were gone when Factory started',
      );
      c.down.removeOverride(row);
    }
  }
}

/** A labelled preview with no row (e.g. a restored database) is tracked again, so its PR is watched. */
async function adopt(ctx: ReconcileContext, project: string, c: ContainerSummary, task: TaskRow): Promise<void> {
  const row = await ctx.repo.upsertLive(adoptedPreview(project, c, task, ctx.machine));
  await ctx.repo.update(row.id, { status: 'running', container_id: c.id });
  ctx.log.info({ project, taskId: task.id }, 'found a preview environment without a record; tracking it again');
}
