import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { killRun } from './containment.js';

export interface LeftoverRun {
  pid: number | null;
  /** The run's FACTORY_AGENT_RUN mark; '' for runs recorded before marks existed. */
  proc_mark: string;
}

/**
 * Ends whatever is left of an agent run started by a Factory process that died: every process
 * carrying the run's mark (tools in their own sessions included). Runs from before marks existed
 * fall back to the process group, after checking the pid still runs the agent command, so a
 * recycled pid of an unrelated process is left alone.
 */
export async function reapLeftoverRun(run: LeftoverRun, command: string, logger: Logger): Promise<void> {
  if (run.proc_mark) {
    const killed = await killRun(run.proc_mark, run.pid);
    if (killed) logger.warn({ pid: run.pid, processes: killed }, 'killed an agent left running by a previous Factory process');
    return;
  }
  if (run.pid) await reapLegacyGroup(run.pid, command, logger);
}

async function reapLegacyGroup(pid: number, command: string, logger: Logger): Promise<void> {
  let cmdline: string;
  try {
    cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
  } catch {
    return; // gone already (or no /proc: nothing safe to do)
  }
  if (!cmdline.includes(path.basename(command))) return;
  try {
    process.kill(-pid, 'SIGKILL');
    logger.warn({ pid }, 'killed an agent left running by a previous Factory process');
  } catch {
    // not a group leader any more, or already gone
  }
}
