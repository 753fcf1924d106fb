// Assembles the task prompt handed to the agent with -p. Pure.

export interface PromptTask { id: number; title: string; description: string; agent_type: string; repo: string }

export interface PromptInput {
  task: PromptTask;
  repoSlug: string;
  branch: string;
  baseBranch: string;
  /** Extra sections (memory, handoffs from earlier steps, review feedback, clarification answers). */
  sections?: string[];
}

const ROLE: Record<string, string> = {
  coder: 'Implement the task below in this repository.',
  coder_revision: 'Revise the work on this branch according to the feedback below.',
  reviewer: 'Review the changes on this branch against the task below. Do not modify any file.',
  researcher: 'Research the question below and report your findings.',
  devops: 'Carry out the infrastructure task below in this repository.',
};

export function buildPrompt(p: PromptInput): string {
  const parts = [
    `# Task ${p.task.id}: ${p.task.title}`,
    [
      `Agent type: ${p.task.agent_type}`,
      `Repository: ${p.repoSlug}`,
      `Working branch: ${p.branch} (already checked out in the current directory)`,
      `Base branch: ${p.baseBranch} (compare with \`git diff ${p.baseBranch}...HEAD\`; origin/${p.baseBranch} is fetched)`,
    ].join('\n'),
    ROLE[p.task.agent_type] ?? ROLE.coder!,
    `## Description\n\n${p.task.description.trim() || '(no description given; the title is the task)'}`,
    ...(p.sections ?? []).filter((s) => s.trim()),
    [
      '## When you finish',
      'Factory commits anything you leave uncommitted, pushes the branch and opens the pull request; do not push or switch branches yourself.',
      'End with one line of JSON on its own: {"type":"handoff_output","summary":"…","details":"…","files_changed":["…"],"next_steps":"…","learnings":["…"]}',
      'If you are blocked by a question only a person can answer, print {"type":"clarification_needed","question":"…"} on its own line and stop.',
    ].join('\n'),
  ];
  return parts.join('\n\n');
}

/** The prompt for a run that continues an earlier session (after a restart or an answer). */
export function buildResumePrompt(reason: string, task: PromptTask, sections: string[] = []): string {
  // The task is restated briefly: a long session may have been compacted since it began.
  const reminder = `## The task (restated)\n\n# Task ${task.id}: ${task.title}\n\n${truncate(task.description.trim(), 4000)}`;
  return [`Factory resumed this session: ${reason}`, reminder, ...sections.filter((s) => s.trim()), 'Continue the task from where you stopped, then finish as instructed before.'].join('\n\n');
}

/** Caps text for a prompt, marking the cut. */
export function truncate(text: string, max: number, marker = '\n[… truncated by Factory …]'): string {
  return text.length <= max ? text : text.slice(0, Math.max(0, max - marker.length)) + marker;
}
