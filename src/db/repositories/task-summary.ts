// The columns of a task the API shows, checked against TaskRow by the compiler: a column added to
// TaskRow must be added here (or to PIPELINE_ONLY) before anything compiles.
import type { TaskRow } from './task-row.js';

/** Columns only the pipeline reads: a revision's context holds CI logs and review comments. */
export type PipelineOnlyColumn = 'worktree_path' | 'lease_owner' | 'lease_expires_at' | 'keep_worktree' | 'revision_context';
export type TaskSummary = Omit<TaskRow, PipelineOnlyColumn>;

const SUMMARY: { [K in keyof TaskSummary]-?: true } = {
  id: true,
  title: true,
  description: true,
  repo: true,
  agent_type: true,
  status: true,
  plane_issue_id: true,
  plane_sequence_id: true,
  branch_name: true,
  base_branch: true,
  pr_url: true,
  pr_number: true,
  preview_url: true,
  error: true,
  result_summary: true,
  clarification_context: true,
  workflow_id: true,
  workflow_step: true,
  parent_task_id: true,
  session_id: true,
  cost_usd: true,
  input_tokens: true,
  output_tokens: true,
  cache_read_tokens: true,
  cache_creation_tokens: true,
  attempts: true,
  run_requested_at: true,
  not_before: true,
  cancel_requested: true,
  pr_state: true,
  ci_conclusion: true,
  last_output: true,
  created_at: true,
  started_at: true,
  completed_at: true,
  updated_at: true,
};

/** `a, b, c` for a SELECT of a task summary. */
export const SUMMARY_COLUMNS = Object.keys(SUMMARY).join(', ');
