// A row of the tasks table as SQLite and PostgreSQL return it (see the migrations).
import type { TaskStatus } from '../../domain/task-status.js';

export interface TaskRow {
  id: number;
  title: string;
  description: string;
  repo: string;
  agent_type: string;
  status: TaskStatus;
  plane_issue_id: string;
  plane_sequence_id: number | null;
  branch_name: string;
  base_branch: string;
  worktree_path: string;
  pr_url: string;
  pr_number: number | null;
  preview_url: string;
  error: string;
  result_summary: string;
  clarification_context: string;
  workflow_id: number | null;
  workflow_step: number | null;
  parent_task_id: number | null;
  session_id: string;
  cost_usd: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_creation_tokens: number;
  attempts: number;
  run_requested_at: string | null;
  not_before: string | null;
  lease_owner: string | null;
  lease_expires_at: number | null;
  cancel_requested: number;
  keep_worktree: number;
  pr_state: string;
  ci_conclusion: string;
  revision_context: string;
  /** Latest stdout or system log line (≤ 500 characters), kept by LogsRepo.appendMany; null when none. */
  last_output: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  updated_at: string;
}
