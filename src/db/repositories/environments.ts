import type { AsyncDb } from '../query.js';
import { nowIso } from '../time.js';

export const ENV_TYPES = ['test', 'preview'] as const;
export type EnvType = (typeof ENV_TYPES)[number];
export type EnvStatus = 'starting' | 'running' | 'failed' | 'removed';

export interface EnvironmentRow {
  id: number;
  task_id: number;
  repo: string;
  project: string;
  env_type: EnvType;
  service: string;
  port: number;
  host: string;
  url: string;
  status: EnvStatus;
  health: string;
  container_id: string;
  pr_number: number | null;
  compose_file: string;
  override_file: string;
  worktree: string;
  created_at: string;
  updated_at: string;
  removed_at: string | null;
  last_error: string;
  /** The host whose Docker runs it ('' for rows from before several hosts were possible). */
  machine: string;
}

export type NewEnvironment = Pick<
  EnvironmentRow,
  | 'task_id'
  | 'repo'
  | 'project'
  | 'env_type'
  | 'service'
  | 'port'
  | 'host'
  | 'url'
  | 'pr_number'
  | 'compose_file'
  | 'override_file'
  | 'worktree'
  | 'machine'
>;
export type EnvironmentPatch = Partial<Omit<EnvironmentRow, 'id' | 'project' | 'env_type' | 'created_at' | 'updated_at'>>;

const COLS = new Set([
  'task_id',
  'repo',
  'service',
  'port',
  'host',
  'url',
  'status',
  'health',
  'container_id',
  'pr_number',
  'compose_file',
  'override_file',
  'worktree',
  'removed_at',
  'last_error',
  'machine',
]);

export class EnvironmentsRepo {
  constructor(private readonly db: AsyncDb) {}

  /** Inserts a live row for the project, or takes over the live one (a second `up` of the same project). */
  async upsertLive(e: NewEnvironment): Promise<EnvironmentRow> {
    const now = nowIso();
    const live = await this.liveByProject(e.project);
    if (live) {
      return (await this.update(live.id, { ...e, status: 'starting', health: '', container_id: '', last_error: '' }))!;
    }
    return (await this.db.get(
      `
      INSERT INTO environments (task_id, repo, project, env_type, service, port, host, url, status, pr_number,
        compose_file, override_file, worktree, machine, created_at, updated_at)
      VALUES (@task_id, @repo, @project, @env_type, @service, @port, @host, @url, 'starting', @pr_number,
        @compose_file, @override_file, @worktree, @machine, @now, @now)
      RETURNING *`,
      { ...e, now },
    )) as EnvironmentRow;
  }

  async get(id: number): Promise<EnvironmentRow | undefined> {
    return (await this.db.get('SELECT * FROM environments WHERE id = ?', id)) as EnvironmentRow | undefined;
  }

  async liveByProject(project: string): Promise<EnvironmentRow | undefined> {
    return (await this.db.get('SELECT * FROM environments WHERE project = ? AND removed_at IS NULL', project)) as
      EnvironmentRow | undefined;
  }

  /** Live environments (not torn down), oldest first; optionally of one task and/or type. */
  async live(q: { taskId?: number; type?: EnvType } = {}): Promise<EnvironmentRow[]> {
    const where = ['removed_at IS NULL'];
    const params: Record<string, unknown> = {};
    if (q.taskId !== undefined) {
      where.push('task_id = @taskId');
      params.taskId = q.taskId;
    }
    if (q.type) {
      where.push('env_type = @type');
      params.type = q.type;
    }
    return (await this.db.all(`SELECT * FROM environments WHERE ${where.join(' AND ')} ORDER BY id`, params)) as EnvironmentRow[];
  }

  /** Every row (also torn-down ones), newest first. */
  async list(q: { taskId?: number; includeRemoved?: boolean; limit?: number } = {}): Promise<EnvironmentRow[]> {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: q.limit ?? 200 };
    if (!q.includeRemoved) where.push('removed_at IS NULL');
    if (q.taskId !== undefined) {
      where.push('task_id = @taskId');
      params.taskId = q.taskId;
    }
    const sql = `SELECT * FROM environments ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT @limit`;
    return (await this.db.all(sql, params)) as EnvironmentRow[];
  }

  async update(id: number, patch: EnvironmentPatch): Promise<EnvironmentRow | undefined> {
    const entries = Object.entries(patch).filter(([k, v]) => v !== undefined && COLS.has(k));
    const sets = ['updated_at = @updated_at', ...entries.map(([k]) => `${k} = @p_${k}`)];
    const params = Object.fromEntries(entries.map(([k, v]) => [`p_${k}`, v]));
    return (await this.db.get(`UPDATE environments SET ${sets.join(', ')} WHERE id = @id RETURNING *`, {
      ...params,
      updated_at: nowIso(),
      id,
    })) as EnvironmentRow | undefined;
  }

  /** Marks a row torn down; `status` stays `failed` for an `up` that failed. */
  markRemoved(id: number, status: 'removed' | 'failed' = 'removed', error?: string): Promise<EnvironmentRow | undefined> {
    return this.update(id, { status, removed_at: nowIso(), ...(error !== undefined ? { last_error: error } : {}) });
  }

  /** Whether environments were ever used here (nothing to clean up otherwise). */
  async any(): Promise<boolean> {
    return (await this.db.get('SELECT 1 FROM environments LIMIT 1')) !== undefined;
  }

  async countLive(): Promise<number> {
    return ((await this.db.get('SELECT COUNT(*) AS n FROM environments WHERE removed_at IS NULL')) as { n: number }).n;
  }
}
