// What the stages of the task pipeline hand each other, and the shapes of the parts the composition
// root plugs into it (prompt sections, the workflow step finisher, run recorders).
import type { TaskRow } from '../db/repositories/tasks.js';
import type { RepoSpec } from '../git/repo-spec.js';
import type { Worktree } from '../git/workspace.js';
import type { RunResult } from '../agents/runner.js';
import type { ProtocolObject } from '../agents/protocol.js';
import type { ExecResult } from '../queue/types.js';

/** What the agent produced, handed to the run recorders after every run. */
export interface RunReport {
  task: TaskRow;
  run: RunResult;
  /** The task_runs row of this run. */
  runId: number;
  protocol: ProtocolObject[];
  handoff: ProtocolObject | undefined;
  learnings: string[];
  finalText: string;
  changedFiles: string[];
  status: ExecResult['status'];
}

/** A section of the agent's prompt (workflow input, board messages, memory…); undefined adds nothing. */
export type PromptSource = (task: TaskRow, info: { resume: boolean }) => Promise<string | undefined> | string | undefined;
/** Told about every run once its outcome is known (handoffs, memory, the PR loop). Awaited in order. */
export type RunRecorder = (report: RunReport) => Promise<void> | void;
/** Ends a successful run another way than a pull request (a workflow step); undefined: the default. */
export type Finisher = (task: TaskRow, wt: Worktree, spec: RepoSpec, report: Omit<RunReport, 'status'>) => Promise<ExecResult>;
export type FinisherFor = (task: TaskRow) => Finisher | undefined;
/** The system prompt file for a task when something other than its agent template decides (workflow steps). */
export type SystemPromptFor = (task: TaskRow) => Promise<string | undefined> | string | undefined;

/** The workspace stage's answer: where the agent runs, and what an earlier run left there. */
export interface Prepared {
  task: TaskRow;
  spec: RepoSpec;
  wt: Worktree;
  branch: string;
  base: string;
  /** A worktree of an earlier run of this task was on this host. */
  hadWorktree: boolean;
  /** The WIP checkpoint commit another worker left, now checked out here. */
  restored: string | undefined;
  /** A checkpoint of this task existed on the remote. */
  checkpointed: boolean;
}
