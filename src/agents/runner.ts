// Runs one agent process under a watchdog: exact total and idle timers, SIGTERM then SIGKILL to the
// agent and everything it started (containment.ts), line-by-line parsing with bounded memory.
import { execa } from 'execa';
import { findRunProcesses, killRun, newRunMark, RUN_MARK_VAR, signalProcesses, type ProcId } from './containment.js';
import { LineSplitter, Tail } from './lines.js';
import { parseStreamLine, type ResultEvent, type StreamEvent } from './protocol.js';

export type RunOutcome =
  | 'success' // result event without error
  | 'agent_error' // result event with is_error
  | 'crashed' // exited without a result event
  | 'timeout' // total time limit
  | 'idle_timeout' // no output for too long
  | 'aborted' // cancel or shutdown from outside
  | 'stopped' // Factory stopped it on purpose (clarification, stall, budget)
  | 'spawn_failed';

export interface RunSpec {
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  totalTimeoutMs: number;
  idleTimeoutMs: number;
  killGraceMs: number;
  signal?: AbortSignal;
  tailLines?: number;
  maxLineBytes?: number;
  /** The run's FACTORY_AGENT_RUN mark (a fresh one when absent). */
  mark?: string;
  /** Called once the agent runs: record pid and mark, so a later start can find leftovers. */
  onStart?(pid: number, mark: string): void;
  onLine?(stream: 'stdout' | 'stderr', line: string): void;
  /** Return a reason string to stop the agent (e.g. it asked a question). */
  onEvent?(event: StreamEvent): string | void;
}

export interface RunResult {
  outcome: RunOutcome;
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  result: ResultEvent | null;
  sessionId: string;
  /** Last stdout lines and last stderr lines, bounded. */
  tail: string[];
  stderrTail: string[];
  forceKilled: boolean;
  /** Why Factory terminated it, first cause wins. */
  terminationReason: string | null;
  /** A human-readable error for every outcome but success. */
  error: string;
  pid: number | null;
  /** Processes of the run still alive after the agent exited (tools it left behind), killed then. */
  leftoversKilled: number;
}

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

export async function runAgent(spec: RunSpec): Promise<RunResult> {
  const started = Date.now();
  const tail = new Tail<string>(spec.tailLines ?? 200);
  const stderrTail = new Tail<string>(50);
  let result: ResultEvent | null = null;
  let sessionId = '';
  let outcome: RunOutcome | null = null;
  let terminationReason: string | null = null;
  let forceKilled = false;
  let lastActivity = Date.now();

  const mark = spec.mark ?? newRunMark();
  const child = execa(spec.command, spec.args, {
    cwd: spec.cwd,
    env: { ...spec.env, [RUN_MARK_VAR]: mark },
    extendEnv: false,
    detached: true, // own process group: a terminal's signals do not reach it, the group kill does
    stdin: 'ignore',
    buffer: false,
    reject: false,
    cleanup: true, // no effect for a detached child: a hard exit of Factory is handled at the next start
    stripFinalNewline: false,
  });
  const pid = child.pid ?? null;
  if (pid) spec.onStart?.(pid, mark);

  let termTimer: NodeJS.Timeout | undefined;
  const seen: ProcId[] = [];
  const terminate = (why: RunOutcome, reason: string) => {
    if (outcome) return;
    outcome = why;
    terminationReason = reason;
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
      const quiet = Date.now() - lastActivity;
      if (quiet >= spec.idleTimeoutMs)
        terminate('idle_timeout', `no output for ${minutes(quiet)} (activity timeout ${minutes(spec.idleTimeoutMs)})`);
      else armIdle(spec.idleTimeoutMs - quiet);
    }, ms);
  };
  armIdle(spec.idleTimeoutMs);

  const onAbort = () => terminate('aborted', `aborted: ${String(spec.signal?.reason ?? 'cancel')}`);
  if (spec.signal?.aborted) onAbort();
  else spec.signal?.addEventListener('abort', onAbort, { once: true });

  const maxLine = spec.maxLineBytes ?? 1_000_000;
  const out = new LineSplitter(maxLine, (line) => {
    lastActivity = Date.now();
    tail.push(line);
    spec.onLine?.('stdout', line);
    for (const ev of parseStreamLine(line)) {
      if (ev.kind === 'init' && ev.sessionId) sessionId = ev.sessionId;
      if (ev.kind === 'result') {
        result = ev.result;
        if (ev.result.sessionId) sessionId = ev.result.sessionId;
      }
      const stop = spec.onEvent?.(ev);
      if (stop) terminate('stopped', stop);
    }
  });
  const err = new LineSplitter(maxLine, (line) => {
    lastActivity = Date.now();
    stderrTail.push(line);
    spec.onLine?.('stderr', line);
  });
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => err.push(c));

  // Wait for the agent itself to exit; its streams may stay open while grandchildren hold them.
  const exit = await new Promise<{ code: number | null; signal: string | null; spawnError?: Error }>((resolve) => {
    child.once('exit', (code, sig) => resolve({ code, signal: sig }));
    child.once('error', (e) => resolve({ code: null, signal: null, spawnError: e }));
  });
  clearTimeout(totalTimer);
  clearTimeout(idleTimer!);
  spec.signal?.removeEventListener('abort', onAbort);
  // Whatever the agent left running dies with it: its group, and every process carrying its mark.
  if (pid) killGroup(pid, 'SIGKILL');
  clearTimeout(termTimer);
  const leftoversKilled = pid ? await killLeftovers(mark, seen, null) : 0;
  await Promise.race([child, new Promise((r) => setTimeout(r, 2000).unref())]);
  out.end();
  err.end();

  const durationMs = Date.now() - started;
  const base = {
    exitCode: exit.code,
    signal: exit.signal,
    durationMs,
    result,
    sessionId,
    tail: tail.values(),
    stderrTail: stderrTail.values(),
    forceKilled,
    terminationReason,
    pid,
    leftoversKilled,
  };
  if (exit.spawnError && !pid) {
    const code = (exit.spawnError as NodeJS.ErrnoException).code;
    const error =
      code === 'ENOENT'
        ? `agent command not found: ${spec.command} (set agent.command in config.yml)`
        : `could not start agent: ${exit.spawnError.message}`;
    return { ...base, outcome: 'spawn_failed', error };
  }
  if (outcome) {
    return { ...base, outcome, error: terminationReason ?? outcome };
  }
  const r = result as ResultEvent | null;
  if (r) {
    if (!r.isError) return { ...base, outcome: 'success', error: '' };
    // Claude Code reports some errors with subtype "success"; only a real error subtype is worth naming.
    const kind = r.subtype && r.subtype !== 'success' ? ` (${r.subtype})` : '';
    const hint = /not logged in|authentication_failed|invalid api key|\/login/i.test(r.text)
      ? ' (Claude Code is not authenticated: run `claude login` as the service user or set ANTHROPIC_API_KEY)'
      : '';
    return { ...base, outcome: 'agent_error', error: `agent reported an error${kind}: ${r.text.slice(0, 1500)}${hint}` };
  }
  const stderr = stderrTail.values().slice(-10).join('\n');
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  return { ...base, outcome: 'crashed', error: `agent ${how} without a result${stderr ? `; stderr:\n${stderr}` : ''}` };
}
