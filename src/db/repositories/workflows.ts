import type { AsyncDb } from '../query.js';
import { nowIso } from '../time.js';
import { scrubDeep } from '../../secrets.js';

export type WorkflowStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
export type StepStatus = 'pending' | 'running' | 'completed' | 'skipped' | 'failed';

export interface WorkflowRow {
  id: number;
  name: string;
  title: string;
  description: string;
  repo: string;
  status: WorkflowStatus;
  current_step: number;
  iteration: number;
  max_iterations: number;
  plane_issue_id: string;
  error: string;
  definition: string;
  outputs: string;
  branch_name: string;
  pr_url: string;
  result: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  updated_at: string;
}

export interface StepRow {
  id: number;
  workflow_id: number;
  step_index: number;
  agent_type: string;
  task_id: number | null;
  status: StepStatus;
  input_key: string;
  output_key: string;
  condition: string;
  loop_to: string;
  prompt_template: string;
  output_data: string;
  iteration: number;
  started_at: string | null;
  completed_at: string | null;
}

const WF_COLS = new Set(['current_step', 'iteration', 'error', 'outputs', 'branch_name', 'pr_url', 'result', 'started_at', 'completed_at']);
const STEP_COLS = new Set(['task_id', 'status', 'output_data', 'iteration', 'started_at', 'completed_at']);

function sets(patch: Record<string, unknown>, allowed: Set<string>, prefix = 'p_'): { sql: string; params: Record<string, unknown> } {
  const entries = Object.entries(patch).filter(([, v]) => v !== undefined);
  for (const [k] of entries) if (!allowed.has(k)) throw new Error(`column ${k} cannot be updated`);
  return {
    sql: entries.map(([k]) => `${k} = @${prefix}${k}`).join(', '),
    params: Object.fromEntries(entries.map(([k, v]) => [`${prefix}${k}`, v])),
  };
}

export class WorkflowsRepo {
  constructor(private readonly db: AsyncDb) {}

  async create(w: {
    name: string;
    title: string;
    description: string;
    repo: string;
    max_iterations: number;
    plane_issue_id: string;
    definition: string;
    steps: Array<{ agent: string; input?: string; output?: string; condition?: string; loop_to?: string; prompt_template?: string }>;
  }): Promise<WorkflowRow> {
    return this.db.transaction(async (tx) => {
      const now = nowIso();
      const row = (await tx.get(
        `INSERT INTO workflows (name, title, description, repo, status, max_iterations, plane_issue_id, definition, created_at, started_at, updated_at)
        VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?) RETURNING *`,
        w.name,
        w.title,
        w.description,
        w.repo,
        w.max_iterations,
        w.plane_issue_id,
        w.definition,
        now,
        now,
        now,
      )) as WorkflowRow;
      for (const [i, s] of w.steps.entries()) {
        await tx.run(
          `INSERT INTO workflow_steps (workflow_id, step_index, agent_type, input_key, output_key, condition, loop_to, prompt_template)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          row.id,
          i,
          s.agent,
          s.input ?? '',
          s.output ?? '',
          s.condition ?? '',
          s.loop_to ?? '',
          s.prompt_template ?? '',
        );
      }
      return row;
    });
  }

  async get(id: number): Promise<WorkflowRow | undefined> {
    return (await this.db.get('SELECT * FROM workflows WHERE id = ?', id)) as WorkflowRow | undefined;
  }

  async list(q: { status?: WorkflowStatus; limit?: number; offset?: number } = {}): Promise<WorkflowRow[]> {
    return (await this.db.all(
      `SELECT * FROM workflows ${q.status ? 'WHERE status = @status' : ''} ORDER BY id DESC LIMIT @limit OFFSET @offset`,
      { status: q.status, limit: q.limit ?? 100, offset: q.offset ?? 0 },
    )) as WorkflowRow[];
  }

  async byStatus(status: WorkflowStatus): Promise<WorkflowRow[]> {
    return (await this.db.all('SELECT * FROM workflows WHERE status = ? ORDER BY id', status)) as WorkflowRow[];
  }

  async update(id: number, patch: Partial<WorkflowRow>): Promise<WorkflowRow | undefined> {
    const s = sets(patch, WF_COLS);
    return (await this.db.get(`UPDATE workflows SET ${s.sql ? s.sql + ', ' : ''}updated_at = @now WHERE id = @id RETURNING *`, {
      ...s.params,
      now: nowIso(),
      id,
    })) as WorkflowRow | undefined;
  }

  /** Guarded status change; undefined when the workflow is no longer in `from`. */
  async transition(
    id: number,
    from: WorkflowStatus[],
    to: WorkflowStatus,
    patch: Partial<WorkflowRow> = {},
  ): Promise<WorkflowRow | undefined> {
    const s = sets(patch, WF_COLS);
    const inList = from.map((_, i) => `@f${i}`).join(', ');
    return (await this.db.get(
      `UPDATE workflows SET status = @to, ${s.sql ? s.sql + ', ' : ''}updated_at = @now WHERE id = @id AND status IN (${inList}) RETURNING *`,
      { ...s.params, ...Object.fromEntries(from.map((f, i) => [`f${i}`, f])), to, now: nowIso(), id },
    )) as WorkflowRow | undefined;
  }

  async steps(workflowId: number): Promise<StepRow[]> {
    return (await this.db.all('SELECT * FROM workflow_steps WHERE workflow_id = ? ORDER BY step_index', workflowId)) as StepRow[];
  }

  async updateStep(workflowId: number, index: number, patch: Partial<StepRow>): Promise<void> {
    const s = sets(patch, STEP_COLS);
    if (!s.sql) return;
    await this.db.run(`UPDATE workflow_steps SET ${s.sql} WHERE workflow_id = @wid AND step_index = @idx`, {
      ...s.params,
      wid: workflowId,
      idx: index,
    });
  }

  /** Steps from `index` onward go back to pending for another iteration. */
  async resetStepsFrom(workflowId: number, index: number, iteration: number): Promise<void> {
    await this.db.run(
      `UPDATE workflow_steps SET status = 'pending', task_id = NULL, output_data = '', started_at = NULL, completed_at = NULL, iteration = ?
      WHERE workflow_id = ? AND step_index >= ?`,
      iteration,
      workflowId,
      index,
    );
  }
}

export interface HandoffRow {
  id: number;
  from_task_id: number;
  to_task_id: number | null;
  workflow_id: number | null;
  output_type: string;
  content: string;
  summary: string;
  created_at: string;
}

export class HandoffsRepo {
  constructor(private readonly db: AsyncDb) {}

  /** Handoff text is agent output that later prompts and the API carry: it is stored scrubbed. */
  async create(h: Omit<HandoffRow, 'id' | 'created_at'>): Promise<HandoffRow> {
    return (await this.db.get(
      `INSERT INTO handoffs (from_task_id, to_task_id, workflow_id, output_type, content, summary, created_at)
      VALUES (@from_task_id, @to_task_id, @workflow_id, @output_type, @content, @summary, @now) RETURNING *`,
      { ...scrubDeep(h), now: nowIso() },
    )) as HandoffRow;
  }

  async get(id: number): Promise<HandoffRow | undefined> {
    return (await this.db.get('SELECT * FROM handoffs WHERE id = ?', id)) as HandoffRow | undefined;
  }

  async setTarget(id: number, toTaskId: number): Promise<void> {
    await this.db.run('UPDATE handoffs SET to_task_id = ? WHERE id = ?', toTaskId, id);
  }

  async forTask(taskId: number, direction: 'from' | 'to'): Promise<HandoffRow[]> {
    const col = direction === 'from' ? 'from_task_id' : 'to_task_id';
    return (await this.db.all(`SELECT * FROM handoffs WHERE ${col} = ? ORDER BY id`, taskId)) as HandoffRow[];
  }

  async forWorkflow(workflowId: number): Promise<HandoffRow[]> {
    return (await this.db.all('SELECT * FROM handoffs WHERE workflow_id = ? ORDER BY id', workflowId)) as HandoffRow[];
  }
}
