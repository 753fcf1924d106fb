// Finds and ends every process an agent run started, wherever it put itself.
//
// A process group is not enough: the Claude CLI starts tool commands in their own sessions, and a
// tool may `setsid` or double-fork so that it is reparented away from the agent. Two nets catch them
// (no cgroup is needed, so this works unprivileged and unsandboxed):
//   - a mark: every run's environment carries FACTORY_AGENT_RUN=<unique mark>, which children inherit
//     whatever session or parent they end up with; /proc/<pid>/environ shows it;
//   - a descendant walk of /proc by parent pid, for children that clear their environment while
//     still attached to the tree.
// Each process found is identified by pid plus its start time, so a pid reused by another process
// between finding and killing is never signalled. Linux only; without /proc nothing is found and
// the caller's process-group kill is all there is.
import { readdir, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';

export const RUN_MARK_VAR = 'FACTORY_AGENT_RUN';

export interface ProcId {
  pid: number;
  /** Start time in clock ticks since boot (field 22 of /proc/<pid>/stat). */
  start: string;
}

interface ProcStat extends ProcId {
  ppid: number;
  state: string;
}

export function newRunMark(): string {
  return `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}

async function readStat(pid: number): Promise<ProcStat | null> {
  try {
    const raw = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may itself contain spaces or ')': fields start after the last ')'.
    const fields = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    return { pid, state: fields[0]!, ppid: Number(fields[1]), start: fields[19]! };
  } catch {
    return null;
  }
}

async function listPids(): Promise<number[]> {
  try {
    return (await readdir('/proc'))
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .filter((p) => p !== process.pid);
  } catch {
    return [];
  }
}

/** True when the process's environment has the mark as a whole variable ("ab" does not match "abc"). */
async function carriesMark(pid: number, mark: string): Promise<boolean> {
  try {
    const env = await readFile(`/proc/${pid}/environ`);
    const entry = `${RUN_MARK_VAR}=${mark}\0`;
    return env.includes(`\0${entry}`) || env.subarray(0, entry.length).toString() === entry;
  } catch {
    return false; // gone, or not ours to read
  }
}

/** The live (non-zombie) processes carrying the mark or descending from `rootPid`. */
export async function findRunProcesses(mark: string, rootPid: number | null): Promise<ProcId[]> {
  const pids = await listPids();
  const stats = (await Promise.all(pids.map(readStat))).filter((s): s is ProcStat => s !== null && s.state !== 'Z');
  const found = new Map<number, ProcStat>();
  const marked = await Promise.all(stats.map(async (s) => ((await carriesMark(s.pid, mark)) ? s : null)));
  for (const s of marked) if (s) found.set(s.pid, s);
  // The walk starts only from a root that is still the run's own (marked) process: a pid reused
  // by something else after the agent exited must not lead to that process's children.
  const root = rootPid ? found.get(rootPid) : undefined;
  if (root) {
    const children = new Map<number, ProcStat[]>();
    for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
    const seen = new Set<number>([root.pid]);
    const stack = [root.pid];
    while (stack.length) {
      for (const c of children.get(stack.pop()!) ?? []) {
        if (seen.has(c.pid)) continue;
        seen.add(c.pid);
        found.set(c.pid, c);
        stack.push(c.pid);
      }
    }
  }
  return [...found.values()].map(({ pid, start }) => ({ pid, start }));
}

/** Signals each process that is still the same process (same start time). Returns how many were signalled. */
export async function signalProcesses(procs: ProcId[], sig: NodeJS.Signals): Promise<number> {
  let sent = 0;
  for (const p of procs) {
    const now = await readStat(p.pid);
    if (!now || now.start !== p.start || now.state === 'Z') continue;
    try {
      process.kill(p.pid, sig);
      sent++;
    } catch {
      // exited in between
    }
  }
  return sent;
}

/**
 * SIGKILLs everything of the run until nothing is left (a process may fork while the others die).
 * Returns the number of processes killed.
 */
export async function killRun(mark: string, rootPid: number | null, rounds = 5): Promise<number> {
  let total = 0;
  for (let i = 0; i < rounds; i++) {
    const procs = await findRunProcesses(mark, rootPid);
    if (!procs.length) break;
    total += await signalProcesses(procs, 'SIGKILL');
  }
  return total;
}
