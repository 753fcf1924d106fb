// Taking an environment down: `docker compose down -v --remove-orphans` of its project (with its
// files while the worktree exists), the row marked removed, Factory's override file deleted. One
// project at a time (the same lock as bringing it up).
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { EnvironmentRow, EnvironmentsRepo } from '../db/repositories/environments.js';
import type { KeyedMutex } from '../git/mutex.js';
import { scrub } from '../secrets.js';
import { firstLine, type DockerCli, type DockerResult } from './docker-cli.js';

export interface RemoveResult {
  ok: boolean;
  row: EnvironmentRow;
  error?: string;
  /** It was already torn down (by a concurrent caller, or earlier). */
  already?: boolean;
}

export interface TeardownDeps {
  docker: DockerCli;
  repo: EnvironmentsRepo;
  log: Logger;
  locks: KeyedMutex;
  /** Where Factory writes the override files (only those are ever deleted). */
  overrideDir: string;
  dataDir: string;
  downMs: number;
}

export class EnvironmentTeardown {
  constructor(private readonly d: TeardownDeps) {}

  /** `docker compose down -v --remove-orphans` of the row's project; the row is marked removed on success. */
  async teardown(row: EnvironmentRow, reason: string): Promise<RemoveResult> {
    return this.d.locks.run(row.project, async () => {
      const fresh = (await this.d.repo.get(row.id)) ?? row;
      if (fresh.removed_at) return { ok: true, row: fresh, already: true };
      const r = await this.composeDown(fresh);
      if (!r.ok) {
        const error = scrub(`docker compose down failed: ${firstLine(r.stderr) || r.spawnError || `exit code ${r.exitCode}`}`);
        this.d.log.warn({ taskId: fresh.task_id, project: fresh.project, error }, 'could not tear down environment');
        return { ok: false, row: (await this.d.repo.update(fresh.id, { last_error: error })) ?? fresh, error };
      }
      this.removeOverride(fresh);
      this.d.log.info({ taskId: fresh.task_id, project: fresh.project, reason }, 'environment torn down');
      return { ok: true, row: (await this.d.repo.markRemoved(fresh.id, fresh.status === 'failed' ? 'failed' : 'removed')) ?? fresh };
    });
  }

  composeDown(row: Pick<EnvironmentRow, 'project' | 'worktree' | 'compose_file' | 'override_file'>): Promise<DockerResult> {
    // With the files (while the worktree exists) compose knows every service and volume; without them
    // it finds the project's containers, networks and volumes by their labels.
    const composeAbs = row.worktree && row.compose_file ? path.join(row.worktree, row.compose_file) : '';
    const withFiles = composeAbs && existsSync(composeAbs) && row.override_file && existsSync(row.override_file);
    return this.d.docker.run(
      ['compose', '-p', row.project, ...(withFiles ? ['-f', composeAbs, '-f', row.override_file] : []), 'down', '-v', '--remove-orphans'],
      { cwd: withFiles ? row.worktree : this.d.dataDir, timeoutMs: this.d.downMs },
    );
  }

  downProject(project: string): Promise<DockerResult> {
    return this.d.locks.run(project, () => this.composeDown({ project, worktree: '', compose_file: '', override_file: '' }));
  }

  removeOverride(row: EnvironmentRow): void {
    if (row.override_file && row.override_file.startsWith(this.d.overrideDir + path.sep)) rmSync(row.override_file, { force: true });
  }
}
