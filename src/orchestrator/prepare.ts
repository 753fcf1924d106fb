// The workspace stage: bring the clone cache up to date and give the task its worktree on its
// branch, restoring another worker's WIP checkpoint when the task ran elsewhere since.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { TaskService } from '../tasks/service.js';
import { GitUnreachableError, slugify, type Workspace, type Worktree } from '../git/workspace.js';
import type { ExecResult } from '../queue/types.js';
import type { LogWriter } from './log-writer.js';
import type { RepoSpecOf } from './repo-specs.js';
import type { Prepared } from './types.js';
import { worktreeKey } from './worktree.js';

/** How a task waiting for an unreachable git host says so in its error field. */
const WAITING_FOR_HOST = 'Waiting for the git host';

export interface PrepareDeps {
  workspace: Workspace;
  tasks: TaskService;
  repoSpec: RepoSpecOf;
  branchPrefix: string;
  /** Give up on an unreachable git host after this long. */
  unreachableRetryMs: number;
  /** Checkpoints are pushed (several workers), so one may have to be restored. */
  checkpoints: boolean;
}

export class WorkspaceStage {
  constructor(private readonly d: PrepareDeps) {}

  /** The prepared worktree, or the result that puts the task back (git host unreachable). */
  async prepare(task: TaskRow, log: LogWriter): Promise<Prepared | { wait: ExecResult }> {
    const ws = this.d.workspace;
    const spec = this.d.repoSpec(task.repo);
    log.system(`preparing workspace for ${spec.slug}`);
    const branch = task.branch_name || `${this.d.branchPrefix}${task.id}-${slugify(task.title)}`;
    const key = worktreeKey(task);
    const mayRestore = this.d.checkpoints && !task.workflow_id && Boolean(task.session_id);
    let hadWorktree = existsSync(path.join(ws.worktreePath(key), '.git'));
    let defaultBranch: string;
    let fresh: Worktree | undefined;
    try {
      if (!task.branch_name && !mayRestore) {
        // A first run: nothing to restore, so the worktree is made while the fetch runs.
        ({ defaultBranch, wt: fresh } = await ws.syncAndPrepare(spec, key, branch, task.base_branch || undefined));
      } else {
        defaultBranch = await ws.sync(spec, { base: task.base_branch || undefined, branch });
      }
    } catch (err) {
      if (err instanceof GitUnreachableError) return { wait: this.waitForGitHost(task, log, err) };
      throw err;
    }
    const base = task.base_branch || defaultBranch;
    if (fresh) return this.prepared(task, log, { spec, wt: fresh, branch, base, hadWorktree, restored: undefined, checkpointed: false });
    // An earlier run started and the task ran elsewhere since (no worktree here, or ours is older than
    // the last checkpoint another worker pushed): start from that checkpoint.
    let restored: string | undefined;
    let checkpointed = false;
    if (this.d.checkpoints && !task.workflow_id && task.session_id) {
      const cp = await ws.fetchCheckpoint(spec, task.id);
      checkpointed = Boolean(cp);
      const elsewhere = cp && cp.origin !== '' && cp.origin !== ws.checkpointOrigin(ws.worktreePath(key));
      // A checkpoint the pushed branch already contains is old news (its task published since).
      if (cp && (!hadWorktree || elsewhere) && !(await ws.branchContains(spec, branch, cp.commit))) {
        if (hadWorktree) {
          log.system('another worker ran this task after this host did: replacing the old worktree with its checkpoint');
          await ws.remove(spec, key, branch);
          hadWorktree = false;
        }
        restored = cp.commit;
      }
    }
    const wt = await ws.prepare(spec, key, branch, base, restored);
    if (restored) log.system(`taking over from another worker: the worktree starts at its WIP checkpoint ${restored.slice(0, 12)}`);
    return this.prepared(task, log, { spec, wt, branch, base, hadWorktree, restored, checkpointed });
  }

  /** Records the task's branch, base and worktree, and says so in its log. */
  private async prepared(task: TaskRow, log: LogWriter, p: Omit<Prepared, 'task'>): Promise<Prepared> {
    const updated = await this.d.tasks.update(task.id, { branch_name: p.branch, base_branch: p.base, worktree_path: p.wt.path });
    log.system(`worktree ${p.wt.path} on branch ${p.branch} (base ${p.base})`);
    return { task: updated ?? task, ...p };
  }

  /**
   * The git host is unreachable: the task waits (queued, attempt not counted) and retries with a
   * growing delay, its error saying since when, until the retry window has passed.
   */
  private waitForGitHost(task: TaskRow, log: LogWriter, err: GitUnreachableError): ExecResult {
    const since = new RegExp(`^${WAITING_FOR_HOST} since (\\S+):`).exec(task.error)?.[1];
    const start = since && !Number.isNaN(Date.parse(since)) ? Date.parse(since) : Date.now();
    const waited = Date.now() - start;
    if (waited >= this.d.unreachableRetryMs)
      return { status: 'failed', error: `Gave up after ${Math.round(waited / 60_000)} min: ${err.message}` };
    const delay = Math.min(5 * 60_000, Math.max(2000, waited));
    log.system(`${err.message}; retrying in ${Math.round(delay / 1000)} s`);
    return {
      status: 'queued',
      notBefore: new Date(Date.now() + delay),
      countAttempt: false,
      patch: { error: `${WAITING_FOR_HOST} since ${new Date(start).toISOString()}: ${err.message}` },
    };
  }
}
