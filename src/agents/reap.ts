import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

/**
 * Kills the process group of an agent started by a Factory process that died. The pid is checked
 * against the agent command first, so a recycled pid of an unrelated process is left alone.
 */
export function reapAgentGroup(pid: number, command: string, logger: Logger): void {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
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
