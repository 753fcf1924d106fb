import type { TaskSummary } from '../db/repositories/tasks.js';

/** The public Task object: the upstream fields in upstream order, then ours. */
export function taskJson(t: TaskSummary, lastOutput: string | null = null) {
  return {
    id: t.id,
    title: t.title,
    description: t.description,
    repo: t.repo,
    agent_type: t.agent_type,
    status: t.status,
    plane_issue_id: t.plane_issue_id,
    plane_sequence_id: t.plane_sequence_id,
    branch_name: t.branch_name,
    pr_url: t.pr_url,
    preview_url: t.preview_url,
    error: t.error,
    clarification_context: t.clarification_context,
    workflow_id: t.workflow_id,
    workflow_step: t.workflow_step,
    last_output: lastOutput === null ? null : lastOutput.slice(0, 500),
    created_at: t.created_at,
    started_at: t.started_at,
    completed_at: t.completed_at,
    // Beyond upstream:
    updated_at: t.updated_at,
    base_branch: t.base_branch,
    pr_number: t.pr_number,
    pr_state: t.pr_state || null,
    ci_conclusion: t.ci_conclusion || null,
    result_summary: t.result_summary,
    session_id: t.session_id,
    attempts: t.attempts,
    run_requested: t.run_requested_at !== null,
    not_before: t.not_before,
    cancel_requested: t.cancel_requested === 1,
    parent_task_id: t.parent_task_id,
    cost_usd: t.cost_usd,
    usage: {
      input_tokens: t.input_tokens,
      output_tokens: t.output_tokens,
      cache_read_tokens: t.cache_read_tokens,
      cache_creation_tokens: t.cache_creation_tokens,
    },
  };
}
