import type { Db } from '../connection.js';
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
  constructor(private readonly db: Db) {}

  create(w: {
    name: string;
    title: string;
    description: string;
    repo: string;
    max_iterations: number;
    plane_issue_id: string;
    definition: string;
    steps: Array<{ agent: string; input?: string; output?: string; condition?: string; loop_to?: string; prompt_template?: string }>;
  }): WorkflowRow {
    return this.db.transaction(() => {
      const now = nowIso();
      const row = this.db
        .prepare(
          `INSERT INTO workflows (name, title, description, repo, status, max_iterations, plane_issue_id, definition, created_at, started_at, updated_at)
        VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?) RETURNING *`,
        )
        .get(w.name, w.title, w.description, w.repo, w.max_iterations, w.plane_issue_id, w.definition, now, now, now) as WorkflowRow;
      const ins = this.db
        .prepare(`INSERT INTO workflow_steps (workflow_id, step_index, agent_type, input_key, output_key, condition, loop_to, prompt_template)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
      w.steps.forEach((s, i) =>
        ins.run(row.id, i, s.agent, s.input ?? '', s.output ?? '', s.condition ?? '', s.loop_to ?? '', s.prompt_template ?? ''),
      );
      return row;
    })();
  }

  get(id: number): WorkflowRow | undefined {
    return this.db.prepare('SELECT * FROM workflows WHERE id = ?').get(id) as WorkflowRow | undefined;
  }

  list(q: { status?: WorkflowStatus; limit?: number; offset?: number } = {}): WorkflowRow[] {
    return this.db
      .prepare(`SELECT * FROM workflows ${q.status ? 'WHERE status = @status' : ''} ORDER BY id DESC LIMIT @limit OFFSET @offset`)
      .all({ status: q.status, limit: q.limit ?? 100, offset: q.offset ?? 0 }) as WorkflowRow[];
  }

  byStatus(status: WorkflowStatus): WorkflowRow[] {
    return this.db.prepare('SELECT * FROM workflows WHERE status = ? ORDER BY id').all(status) as WorkflowRow[];
  }

  update(id: number, patch: Partial<WorkflowRow>): WorkflowRow | undefined {
    const s = sets(patch, WF_COLS);
    return this.db
      .prepare(`UPDATE workflows SET ${s.sql ? s.sql + ', ' : ''}updated_at = @now WHERE id = @id RETURNING *`)
      .get({ ...s.params, now: nowIso(), id }) as WorkflowRow | undefined;
  }

  /** Guarded status change; undefined when the workflow is no longer in `from`. */
  transition(id: number, from: WorkflowStatus[], to: WorkflowStatus, patch: Partial<WorkflowRow> = {}): WorkflowRow | undefined {
    const s = sets(patch, WF_COLS);
    const inList = from.map((_, i) => `@f${i}`).join(', ');
    return this.db
      .prepare(
        `UPDATE workflows SET status = @to, ${s.sql ? s.sql + ', ' : ''}updated_at = @now WHERE id = @id AND status IN (${inList}) RETURNING *`,
      )
      .get({ ...s.params, ...Object.fromEntries(from.map((f, i) => [`f${i}`, f])), to, now: nowIso(), id }) as WorkflowRow | undefined;
  }

  steps(workflowId: number): StepRow[] {
    return this.db.prepare('SELECT * FROM workflow_steps WHERE workflow_id = ? ORDER BY step_index').all(workflowId) as StepRow[];
  }

  updateStep(workflowId: number, index: number, patch: Partial<StepRow>): void {
    const s = sets(patch, STEP_COLS);
    if (!s.sql) return;
    this.db
      .prepare(`UPDATE workflow_steps SET ${s.sql} WHERE workflow_id = @wid AND step_index = @idx`)
      .run({ ...s.params, wid: workflowId, idx: index });
  }

  /** Steps from `index` onward go back to pending for another iteration. */
  resetStepsFrom(workflowId: number, index: number, iteration: number): void {
    this.db
      .prepare(
        `UPDATE workflow_steps SET status = 'pending', task_id = NULL, output_data = '', started_at = NULL, completed_at = NULL, iteration = ?
      WHERE workflow_id = ? AND step_index >= ?`,
      )
      .run(iteration, workflowId, index);
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
  constructor(private readonly db: Db) {}

  /** Handoff text is agent output that later prompts and the API carry: it is stored scrubbed. */
  create(h: Omit<HandoffRow, 'id' | 'created_at'>): HandoffRow {
    return this.db
      .prepare(
        `INSERT INTO handoffs (from_task_id, to_task_id, workflow_id, output_type, content, summary, created_at)
      VALUES (@from_task_id, @to_task_id, @workflow_id, @output_type, @content, @summary, @now) RETURNING *`,
      )
      .get({ ...scrubDeep(h), now: nowIso() }) as HandoffRow;
  }

  get(id: number): HandoffRow | undefined {
    return this.db.prepare('SELECT * FROM handoffs WHERE id = ?').get(id) as HandoffRow | undefined;
  }

  setTarget(id: number, toTaskId: number): void {
    this.db.prepare('UPDATE handoffs SET to_task_id = ? WHERE id = ?').run(toTaskId, id);
  }

  forTask(taskId: number, direction: 'from' | 'to'): HandoffRow[] {
    const col = direction === 'from' ? 'from_task_id' : 'to_task_id';
    return this.db.prepare(`SELECT * FROM handoffs WHERE ${col} = ? ORDER BY id`).all(taskId) as HandoffRow[];
  }

  forWorkflow(workflowId: number): HandoffRow[] {
    return this.db.prepare('SELECT * FROM handoffs WHERE workflow_id = ? ORDER BY id').all(workflowId) as HandoffRow[];
  }
}
