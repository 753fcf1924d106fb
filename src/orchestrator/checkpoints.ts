// WIP checkpoints (several workers): while an agent runs, its work is pushed every so often to a
// checkpoint ref, so another worker can take the task over from there if this one dies.
import type { TaskRow } from '../db/repositories/tasks.js';
import type { RepoSpec } from '../git/repo-spec.js';
import type { Workspace, Worktree } from '../git/workspace.js';
import { coerceError } from '../errors.js';
import { scrub } from '../secrets.js';
import type { LogWriter } from './log-writer.js';

export interface CheckpointTimer {
  /** Pushes one now (or waits for the one in flight). */
  push(): Promise<void>;
  /** Whether any checkpoint was pushed. */
  pushed(): boolean;
  /** Stops the timer and waits for a push in flight. */
  stop(): Promise<void>;
}

/** Pushes a WIP checkpoint every `everyMs` (one at a time, skipped when nothing changed). */
export function startCheckpoints(
  workspace: Workspace,
  everyMs: number,
  target: { task: TaskRow; spec: RepoSpec; wt: Worktree; log: LogWriter },
): CheckpointTimer {
  const { task, spec, wt, log } = target;
  let lastTree: string | undefined;
  let pushed = false;
  let inFlight: Promise<void> = Promise.resolve();
  let busy = false;
  const push = (): Promise<void> => {
    if (busy) return inFlight;
    busy = true;
    inFlight = (async () => {
      try {
        const r = await workspace.pushCheckpoint(spec, wt.path, task.id, lastTree);
        if (r) {
          lastTree = r.tree;
          pushed = true;
          log.system(`pushed WIP checkpoint ${r.commit.slice(0, 12)}`);
        }
      } catch (err) {
        log.system(`WIP checkpoint failed: ${scrub(coerceError(err).message)}`);
      } finally {
        busy = false;
      }
    })();
    return inFlight;
  };
  const timer = setInterval(() => void push(), everyMs);
  timer.unref();
  return {
    push,
    pushed: () => pushed,
    stop: async () => {
      clearInterval(timer);
      await inFlight;
    },
  };
}
