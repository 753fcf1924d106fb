// Runs one agent process under a watchdog: exact total and idle timers, SIGTERM then SIGKILL to the
// agent and everything it started (containment.ts), line-by-line parsing with bounded memory.
import { execa } from 'execa';
import { setPriority } from 'node:os';
import { newRunMark, RUN_MARK_VAR } from './containment.js';
import { startWatchdog, type RunOutcome } from './watchdog.js';
import { LineSplitter, LineTail } from './lines.js';
import { parseStreamLine, type ResultEvent, type StreamEvent } from './protocol.js';

export type { RunOutcome } from './watchdog.js';

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
  /** Nice value of the agent process (0: Factory's own priority). */
  niceness?: number;
  /** The run's FACTORY_AGENT_RUN mark (a fresh one when absent). */
  mark?: string;
  /** Called once the agent runs: record pid and mark, so a later start can find leftovers. */
  onStart?(pid: number, mark: string): void;
  /** `droppedBytes`: how much of an over-long line was cut off (not kept anywhere). */
  onLine?(stream: 'stdout' | 'stderr', line: string, droppedBytes: number): void;
  /**
   * Asked after each piece of output: a promise means "wait before reading more" (the log store is
   * behind). Reading pauses, so the agent's own writes block on the full pipe until it resolves.
   */
  backpressure?(): Promise<void> | null;
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

export async function runAgent(spec: RunSpec): Promise<RunResult> {
  const started = Date.now();
  const tail = new LineTail(spec.tailLines ?? 200);
  const stderrTail = new LineTail(50);
  let result: ResultEvent | null = null;
  let sessionId = '';
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
  // Right after the spawn, while the CLI is still starting up: whatever it starts later inherits the
  // priority. A failure (a platform without it) leaves the agent at Factory's priority.
  if (pid && spec.niceness) {
    try {
      setPriority(pid, spec.niceness);
    } catch {
      /* best effort */
    }
  }
  if (pid) spec.onStart?.(pid, mark);

  const dog = startWatchdog(spec, pid, mark, () => lastActivity);
  const terminate = dog.terminate;

  const maxLine = spec.maxLineBytes ?? 1_000_000;
  const out = new LineSplitter(maxLine, (line, dropped) => {
    tail.push(line);
    spec.onLine?.('stdout', line, dropped);
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
  const err = new LineSplitter(maxLine, (line, dropped) => {
    stderrTail.push(line);
    spec.onLine?.('stderr', line, dropped);
  });
  // Activity is any output, not only whole lines: an agent writing one long line is not stalled.
  const read = (splitter: LineSplitter) => (c: Buffer) => {
    lastActivity = Date.now();
    splitter.push(c);
    const wait = spec.backpressure?.();
    if (!wait) return;
    child.stdout?.pause();
    child.stderr?.pause();
    void wait.then(() => {
      // Blocked by us, not idle: the wait does not count against the agent's idle timeout.
      lastActivity = Date.now();
      child.stdout?.resume();
      child.stderr?.resume();
    });
  };
  child.stdout?.on('data', read(out));
  child.stderr?.on('data', read(err));

  // Wait for the agent itself to exit; its streams may stay open while grandchildren hold them.
  const exit = await new Promise<{ code: number | null; signal: string | null; spawnError?: Error }>((resolve) => {
    child.once('exit', (code, sig) => resolve({ code, signal: sig }));
    child.once('error', (e) => resolve({ code: null, signal: null, spawnError: e }));
  });
  const leftoversKilled = await dog.finish();
  await Promise.race([child, new Promise((r) => setTimeout(r, 2000).unref())]);
  out.end();
  err.end();

  const base = {
    exitCode: exit.code,
    signal: exit.signal,
    durationMs: Date.now() - started,
    result,
    sessionId,
    tail: tail.values(),
    stderrTail: stderrTail.values(),
    forceKilled: dog.forceKilled(),
    terminationReason: dog.reason(),
    pid,
    leftoversKilled,
  };
  return { ...base, ...classify(spec.command, exit, pid, dog.outcome(), dog.reason(), base.result, base.stderrTail) };
}

/** The outcome of a run, and its error for a person: how it ended, first cause wins. */
function classify(
  command: string,
  exit: { code: number | null; signal: string | null; spawnError?: Error },
  pid: number | null,
  stoppedAs: RunOutcome | null,
  reason: string | null,
  result: ResultEvent | null,
  stderrTail: string[],
): { outcome: RunOutcome; error: string } {
  if (exit.spawnError && !pid) {
    const code = (exit.spawnError as NodeJS.ErrnoException).code;
    const error =
      code === 'ENOENT'
        ? `agent command not found: ${command} (set agent.command in config.yml)`
        : `could not start agent: ${exit.spawnError.message}`;
    return { outcome: 'spawn_failed', error };
  }
  if (stoppedAs) return { outcome: stoppedAs, error: reason ?? stoppedAs };
  if (result) {
    if (!result.isError) return { outcome: 'success', error: '' };
    // Claude Code reports some errors with subtype "success"; only a real error subtype is worth naming.
    const kind = result.subtype && result.subtype !== 'success' ? ` (${result.subtype})` : '';
    const hint = /not logged in|authentication_failed|invalid api key|\/login/i.test(result.text)
      ? ' (Claude Code is not authenticated: run `claude login` as the service user or set ANTHROPIC_API_KEY)'
      : '';
    return { outcome: 'agent_error', error: `agent reported an error${kind}: ${result.text.slice(0, 1500)}${hint}` };
  }
  const stderr = stderrTail.slice(-10).join('\n');
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  return { outcome: 'crashed', error: `agent ${how} without a result${stderr ? `; stderr:\n${stderr}` : ''}` };
}
