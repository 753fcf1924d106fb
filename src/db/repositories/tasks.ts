import { sql } from 'kysely';
import type { AsyncDb } from '../query.js';
import { nowIso } from '../time.js';
import type { TaskStatus } from '../../domain/task-status.js';
import type { TaskRow } from './task-row.js';
import { SUMMARY_COLUMNS, type TaskSummary } from './task-summary.js';

export type { TaskRow } from './task-row.js';
export type { TaskSummary } from './task-summary.js';

export interface NewTask {
  title: string;
  description?: string;
  repo?: string;
  agent_type?: string;
  plane_issue_id?: string;
  plane_sequence_id?: number | null;
  workflow_id?: number | null;
  workflow_step?: number | null;
  parent_task_id?: number | null;
  branch_name?: string;
  pr_url?: string;
  pr_number?: number | null;
  base_branch?: string;
  run?: boolean;
  /** Creates the task already in review: it adopts an open PR Factory made elsewhere (a workflow's). */
  inReview?: boolean;
}

/** Columns a caller may set through update/transition (never id, status or timestamps of creation). */
const UPDATABLE = new Set<keyof TaskRow>([
  'title',
  'description',
  'repo',
  'agent_type',
  'plane_issue_id',
  'plane_sequence_id',
  'branch_name',
  'base_branch',
  'worktree_path',
  'pr_url',
  'pr_number',
  'preview_url',
  'error',
  'result_summary',
  'clarification_context',
  'workflow_id',
  'workflow_step',
  'session_id',
  'cost_usd',
  'input_tokens',
  'output_tokens',
  'cache_read_tokens',
  'cache_creation_tokens',
  'run_requested_at',
  'not_before',
  'lease_owner',
  'lease_expires_at',
  'cancel_requested',
  'keep_worktree',
  'started_at',
  'completed_at',
  'attempts',
  'pr_state',
  'ci_conclusion',
  'revision_context',
]);
export type TaskPatch = Partial<Pick<TaskRow, Extract<keyof TaskRow, string>>>;

export interface TaskListQuery {
  status?: TaskStatus;
  repo?: string;
  workflow_id?: number;
  plane_issue_id?: string;
  limit?: number;
  offset?: number;
  /** Only tasks with a smaller id (the next page after the last one seen). */
  before_id?: number;
}

/** One claim of a task: the lease owner and the attempt number the claim gave it. */
export interface LeaseGuard {
  owner: string;
  attempts: number;
}

export interface TaskCounts {
  queued: number;
  runnable: number;
  in_progress: number;
  waiting_for_input: number;
}

export class TasksRepo {
  constructor(private readonly db: AsyncDb) {}

  /** The same repository inside a transaction (see AsyncDb.transaction). */
  in(tx: AsyncDb): TasksRepo {
    return new TasksRepo(tx);
  }

  async create(t: NewTask): Promise<TaskRow> {
    const now = nowIso();
    return (await this.db.get<TaskRow>(
      `
      INSERT INTO tasks (title, description, repo, agent_type, status, plane_issue_id, plane_sequence_id,
        workflow_id, workflow_step, parent_task_id, branch_name, base_branch, pr_url, pr_number, run_requested_at, created_at, completed_at, updated_at)
      VALUES (@title, @description, @repo, @agent_type, @status, @plane_issue_id, @plane_sequence_id,
        @workflow_id, @workflow_step, @parent_task_id, @branch_name, @base_branch, @pr_url, @pr_number, @run_requested_at, @now, @completed_at, @now)
      RETURNING *`,
      {
        title: t.title,
        description: t.description ?? '',
        repo: t.repo ?? '',
        agent_type: t.agent_type ?? 'coder',
        plane_issue_id: t.plane_issue_id ?? '',
        plane_sequence_id: t.plane_sequence_id ?? null,
        workflow_id: t.workflow_id ?? null,
        workflow_step: t.workflow_step ?? null,
        parent_task_id: t.parent_task_id ?? null,
        branch_name: t.branch_name ?? '',
        pr_url: t.pr_url ?? '',
        pr_number: t.pr_number ?? null,
        run_requested_at: t.run && !t.inReview ? now : null,
        status: t.inReview ? 'in_review' : 'queued',
        base_branch: t.base_branch ?? '',
        completed_at: t.inReview ? now : null,
        now,
      },
    ))!;
  }

  get(id: number): Promise<TaskRow | undefined> {
    return this.db.get<TaskRow>('SELECT * FROM tasks WHERE id = ?', id);
  }

  list(q: TaskListQuery = {}): Promise<TaskRow[]> {
    return this.select('*', q);
  }

  /** The list as the API shows it: without the columns only the pipeline reads (task-summary.ts). */
  summaries(q: TaskListQuery = {}): Promise<TaskSummary[]> {
    return this.select(SUMMARY_COLUMNS, q);
  }

  private select<T>(columns: string, q: TaskListQuery): Promise<T[]> {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: q.limit ?? 100, offset: q.offset ?? 0 };
    if (q.status) {
      where.push('status = @status');
      params.status = q.status;
    }
    if (q.repo) {
      where.push('repo = @repo');
      params.repo = q.repo;
    }
    if (q.workflow_id !== undefined) {
      where.push('workflow_id = @workflow_id');
      params.workflow_id = q.workflow_id;
    }
    if (q.plane_issue_id) {
      where.push('plane_issue_id = @plane_issue_id');
      params.plane_issue_id = q.plane_issue_id;
    }
    if (q.before_id !== undefined) {
      where.push('id < @before_id');
      params.before_id = q.before_id;
    }
    const text = `SELECT ${columns} FROM tasks ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT @limit OFFSET @offset`;
    return this.db.all<T>(text, params);
  }

  /** Sets non-status fields. Returns the updated row. */
  update(id: number, patch: TaskPatch): Promise<TaskRow | undefined> {
    const { sets, params } = buildSet(patch);
    return this.db.get<TaskRow>(`UPDATE tasks SET ${sets} WHERE id = @id RETURNING *`, { ...params, id });
  }

  /** Guarded status change: only succeeds while the row is in one of `from`. A lost race returns undefined. */
  transition(
    id: number,
    from: readonly TaskStatus[],
    to: TaskStatus,
    patch: TaskPatch = {},
    lease?: LeaseGuard,
  ): Promise<TaskRow | undefined> {
    const { sets, params } = buildSet(patch);
    const fromList = from.map((_, i) => `@from${i}`).join(', ');
    const fromParams = Object.fromEntries(from.map((s, i) => [`from${i}`, s]));
    // With a lease guard, only the claim that holds the lease may settle the task.
    const owned = lease ? ' AND lease_owner = @guard_owner AND attempts = @guard_attempts' : '';
    return this.db.get<TaskRow>(`UPDATE tasks SET status = @to, ${sets} WHERE id = @id AND status IN (${fromList})${owned} RETURNING *`, {
      ...params,
      ...fromParams,
      to,
      id,
      ...(lease ? { guard_owner: lease.owner, guard_attempts: lease.attempts } : {}),
    });
  }

  async setParent(id: number, parentId: number): Promise<void> {
    await this.db.run('UPDATE tasks SET parent_task_id = ? WHERE id = ?', parentId, id);
  }

  /** Marks a queued task to be run by the scheduler. */
  requestRun(id: number): Promise<TaskRow | undefined> {
    return this.db.get<TaskRow>(
      `UPDATE tasks SET run_requested_at = COALESCE(run_requested_at, @now), updated_at = @now
      WHERE id = @id AND status = 'queued' RETURNING *`,
      { id, now: nowIso() },
    );
  }

  /**
   * Queue depth by state (asynchronous: /health asks for it and must not wait on a busy server).
   * Only the open states are read, through the status index: the cost follows the queue, not the
   * history (a scan of every task took 35 ms at 100k tasks, on every probe).
   */
  async counts(): Promise<TaskCounts> {
    const { rows } = await sql<TaskCounts>`SELECT
      COALESCE(SUM(CASE WHEN status = 'queued' THEN 1 ELSE 0 END), 0) AS queued,
      COALESCE(SUM(CASE WHEN status = 'queued' AND run_requested_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS runnable,
      COALESCE(SUM(CASE WHEN status = 'in_progress' THEN 1 ELSE 0 END), 0) AS in_progress,
      COALESCE(SUM(CASE WHEN status = 'waiting_for_input' THEN 1 ELSE 0 END), 0) AS waiting_for_input
      FROM tasks WHERE status IN ('queued', 'in_progress', 'waiting_for_input')`.execute(this.db.kysely);
    const r = rows[0];
    return {
      queued: Number(r?.queued ?? 0),
      runnable: Number(r?.runnable ?? 0),
      in_progress: Number(r?.in_progress ?? 0),
      waiting_for_input: Number(r?.waiting_for_input ?? 0),
    };
  }

  byStatus(status: TaskStatus): Promise<TaskRow[]> {
    return this.db.all<TaskRow>('SELECT * FROM tasks WHERE status = ? ORDER BY id', status);
  }
}

function buildSet(patch: TaskPatch): { sets: string; params: Record<string, unknown> } {
  const parts = ['updated_at = @updated_at'];
  const params: Record<string, unknown> = { updated_at: nowIso() };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    if (!UPDATABLE.has(k as keyof TaskRow)) throw new Error(`tasks.${k} cannot be updated`);
    parts.push(`${k} = @p_${k}`);
    params[`p_${k}`] = v;
  }
  return { sets: parts.join(', '), params };
}
