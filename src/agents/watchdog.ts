// The watchdog of one agent run: the exact total and idle timers, a cancel from outside, and how a
// run is ended (SIGTERM to its process group and to every process carrying its mark, SIGKILL after
// the grace). Whatever is left when the agent exits is killed too.
import { findRunProcesses, killRun, signalProcesses, type ProcId } from './containment.js';

export type RunOutcome =
  | 'success' // result event without error
  | 'agent_error' // result event with is_error
  | 'crashed' // exited without a result event
  | 'timeout' // total time limit
  | 'idle_timeout' // no output for too long
  | 'aborted' // cancel or shutdown from outside
  | 'stopped' // Factory stopped it on purpose (clarification, stall, budget)
  | 'spawn_failed';

const minutes = (ms: number) => (ms >= 60_000 ? `${Math.round(ms / 6000) / 10} min` : `${Math.round(ms / 100) / 10} s`);

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // group already gone
  }
}

/** SIGKILLs the processes found earlier and everything still carrying the mark (or under `rootPid`). */
async function killLeftovers(mark: string, seen: ProcId[], rootPid: number | null): Promise<number> {
  try {
    return (await signalProcesses(seen, 'SIGKILL')) + (await killRun(mark, rootPid));
  } catch {
    return 0;
  }
}

export interface Watchdog {
  /** Ends the run (the first cause wins and is what the run reports). */
  terminate(why: RunOutcome, reason: string): void;
  /** How Factory ended it, if it did. */
  outcome(): RunOutcome | null;
  reason(): string | null;
  /** The grace ran out and SIGKILL was needed. */
  forceKilled(): boolean;
  /** After the agent exited: stops the timers and kills what it left; returns how many were killed. */
  finish(): Promise<number>;
}

interface Limits {
  totalTimeoutMs: number;
  idleTimeoutMs: number;
  killGraceMs: number;
  signal?: AbortSignal;
}

export function startWatchdog(spec: Limits, pid: number | null, mark: string, lastActivity: () => number): Watchdog {
  let outcome: RunOutcome | null = null;
  let reason: string | null = null;
  let forceKilled = false;
  let termTimer: NodeJS.Timeout | undefined;
  const seen: ProcId[] = [];
  const terminate = (why: RunOutcome, because: string) => {
    if (outcome) return;
    outcome = why;
    reason = because;
    if (!pid) return;
    killGroup(pid, 'SIGTERM');
    // Tools in sessions of their own get the same chance to stop cleanly. Those found are kept: one
    // that cleared its environment is found only through the agent, which may be gone by the end.
    void findRunProcesses(mark, pid)
      .then((procs) => {
        seen.push(...procs);
        return signalProcesses(procs, 'SIGTERM');
      })
      .catch(() => {});
    termTimer = setTimeout(() => {
      forceKilled = true;
      killGroup(pid, 'SIGKILL');
      void killLeftovers(mark, seen, pid);
    }, spec.killGraceMs);
    termTimer.unref();
  };

  // Exact timers: the total one fires once; the idle one re-arms itself for the time still left.
  const totalTimer = setTimeout(
    () => terminate('timeout', `timed out after ${minutes(spec.totalTimeoutMs)} (agent_timeout)`),
    spec.totalTimeoutMs,
  );
  let idleTimer: NodeJS.Timeout;
  const armIdle = (ms: number) => {
    idleTimer = setTimeout(() => {
      const quiet = Date.now() - lastActivity();
      if (quiet >= spec.idleTimeoutMs)
        terminate('idle_timeout', `no output for ${minutes(quiet)} (activity timeout ${minutes(spec.idleTimeoutMs)})`);
      else armIdle(spec.idleTimeoutMs - quiet);
    }, ms);
  };
  armIdle(spec.idleTimeoutMs);

  const onAbort = () => terminate('aborted', `aborted: ${String(spec.signal?.reason ?? 'cancel')}`);
  if (spec.signal?.aborted) onAbort();
  else spec.signal?.addEventListener('abort', onAbort, { once: true });

  return {
    terminate,
    outcome: () => outcome,
    reason: () => reason,
    forceKilled: () => forceKilled,
    async finish() {
      clearTimeout(totalTimer);
      clearTimeout(idleTimer);
      spec.signal?.removeEventListener('abort', onAbort);
      // Whatever the agent left running dies with it: its group, and every process carrying its mark.
      if (pid) killGroup(pid, 'SIGKILL');
      clearTimeout(termTimer);
      return pid ? await killLeftovers(mark, seen, null) : 0;
    },
  };
}
