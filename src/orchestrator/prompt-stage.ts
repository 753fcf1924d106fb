// The prompt stage: decides whether the agent resumes its earlier session and writes the prompt from
// the task and the sections the composition root plugged in (workflow input, messages, memory…).
import type { Logger } from 'pino';
import type { TaskRow } from '../db/repositories/tasks.js';
import { buildPrompt, buildResumePrompt } from '../agents/prompt.js';
import { parseRevision } from '../domain/revision.js';
import { coerceError } from '../errors.js';
import { clarificationSection, parseClarification } from './clarification.js';
import type { Prepared, PromptSource } from './types.js';

export interface PromptPlan {
  /** The agent continues task.session_id. */
  resume: boolean;
  /** The person answered the agent's question since the last run. */
  answered: boolean;
  prompt: string;
  /** The whole prompt for a fresh session (when a resumed session turns out to be gone). */
  fresh: () => string;
}

export interface PromptStageDeps {
  logger: Logger;
  /** Sections added to every prompt, in order; one that fails is left out. */
  sources: PromptSource[];
  /** Sessions live in a store every worker sees, so one can resume on another host. */
  sharedSessionStore: boolean;
}

export class PromptStage {
  private readonly sources: PromptSource[];

  constructor(private readonly d: PromptStageDeps) {
    // Answers to earlier questions always travel with the prompt (a resumed session may be gone).
    this.sources = [(task) => clarificationSection(parseClarification(task.clarification_context)), ...d.sources];
  }

  async plan(p: Prepared): Promise<PromptPlan> {
    const { task, spec, branch, base, restored } = p;
    const clar = parseClarification(task.clarification_context);
    const answered = clar.history.length > 0 && clar.history[clar.history.length - 1]!.response !== undefined && !clar.pending_question;
    // The session can be resumed where its session store is: this host, or a shared store.
    const resume = Boolean(task.session_id) && (p.hadWorktree || (Boolean(restored) && this.d.sharedSessionStore));
    const revision = parseRevision(task.revision_context);
    const sections: string[] = revision ? [revision.text] : [];
    for (const s of await this.sections(task, resume)) sections.push(s);
    if (restored && !resume) sections.push(continuingSection(task.id, base));
    const fresh = () => buildPrompt({ task, repoSlug: spec.slug, branch, baseBranch: base, sections });
    if (!resume) {
      const promptTask = revision ? { ...task, agent_type: 'coder_revision' } : task;
      return {
        resume,
        answered,
        prompt: buildPrompt({ task: promptTask, repoSlug: spec.slug, branch, baseBranch: base, sections }),
        fresh,
      };
    }
    return { resume, answered, prompt: buildResumePrompt(resumeReason(task, answered, restored), task, sections), fresh };
  }

  private async sections(task: TaskRow, resume: boolean): Promise<string[]> {
    const out: string[] = [];
    for (const src of this.sources) {
      try {
        const s = await src(task, { resume });
        if (s) out.push(s);
      } catch (err) {
        this.d.logger.warn({ err: coerceError(err), taskId: task.id }, 'prompt source failed; continuing without it');
      }
    }
    return out;
  }
}

function resumeReason(task: TaskRow, answered: boolean, restored: string | undefined): string {
  if (answered) return 'the person answered your question (see below).';
  if (restored)
    return `the worker that ran this task stopped (attempt ${task.attempts}); this host continues from its last WIP checkpoint, which is checked out here.`;
  return `Factory restarted while you were working (attempt ${task.attempts}). Your earlier edits are still in the worktree and were committed as a WIP checkpoint.`;
}

/** A fresh session on another host: what the interrupted attempt left behind. */
function continuingSection(taskId: number, base: string): string {
  return `## Continuing interrupted work\n\nAn earlier attempt at this task stopped on another worker before it finished. Its work so far is committed in this checkout (the latest commit, "WIP: checkpoint of task ${taskId} …"). Read \`git log --stat origin/${base}..HEAD\` and the diff first, keep what is right, and finish the task from there.`;
}
