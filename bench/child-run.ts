// One side of a benchmark in a fresh `node --import tsx` process of its own, so what it measures (RSS,
// CPU time, event-loop delay) is not mixed with the parent's or with the other benchmarks'. The two
// talk in lines: the child prints `WORD payload` lines on stdout (RESULT <json> when it is done), the
// parent may send words on the child's stdin, and the child's stdin ending means "finish up".
// Each child gets a TMPDIR of its own, removed when it is stopped, so nothing it leaves behind stays.
import { spawn } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ROOT, exited, removeTemp, tempDir } from './lib.js';

export interface BenchChild {
  /** The payload of the next stdout line `WORD payload`; lines nobody has asked for yet are kept. */
  line(word: string): Promise<string>;
  /** The JSON payload of the child's RESULT line. */
  result<T>(): Promise<T>;
  /** One line on the child's stdin. */
  send(word: string): void;
  /** Ends the child's stdin, waits for it to exit (SIGKILL after graceMs) and removes its TMPDIR. */
  stop(graceMs?: number): Promise<void>;
}

interface Waiter {
  word: string;
  resolve(payload: string): void;
  reject(err: Error): void;
}

const payloadOf = (line: string, word: string): string | undefined =>
  line === word ? '' : line.startsWith(`${word} `) ? line.slice(word.length + 1) : undefined;

/** Starts `<module> --child ...args`; it is SIGKILLed if it is still alive after timeoutMs. */
export function startChild(moduleUrl: string, args: string[], opts: { timeoutMs: number; nodeArgs?: string[] }): BenchChild {
  const tmp = tempDir('factory-bench-child-');
  const argv = [...(opts.nodeArgs ?? []), '--import', 'tsx', fileURLToPath(moduleUrl), '--child', ...args];
  const child = spawn(process.execPath, argv, { cwd: ROOT, env: { ...process.env, TMPDIR: tmp }, stdio: ['pipe', 'pipe', 'inherit'] });
  const killer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
  // A child that died must not turn our next send() into an uncaught EPIPE.
  child.stdin.on('error', () => undefined);
  const backlog: string[] = [];
  const waiters: Waiter[] = [];
  let closed = false;
  createInterface({ input: child.stdout }).on('line', (l) => {
    const i = waiters.findIndex((w) => payloadOf(l, w.word) !== undefined);
    if (i < 0) return void backlog.push(l);
    const w = waiters.splice(i, 1)[0]!;
    w.resolve(payloadOf(l, w.word)!);
  });
  // 'close' (not 'exit'): only then has every line the child printed been read.
  child.once('close', (code, signal) => {
    closed = true;
    clearTimeout(killer);
    for (const w of waiters.splice(0))
      w.reject(new Error(`bench child ${args.join(' ')} ended (${code ?? signal}) before printing ${w.word}`));
  });
  const line = (word: string) =>
    new Promise<string>((resolve, reject) => {
      const i = backlog.findIndex((l) => payloadOf(l, word) !== undefined);
      if (i >= 0) resolve(payloadOf(backlog.splice(i, 1)[0]!, word)!);
      else if (closed) reject(new Error(`bench child ${args.join(' ')} ended before printing ${word}`));
      else waiters.push({ word, resolve, reject });
    });
  return {
    line,
    result: async <T>() => JSON.parse(await line('RESULT')) as T,
    send: (word) => void child.stdin.write(`${word}\n`),
    async stop(graceMs = 15_000) {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited(child);
      clearTimeout(timer);
      removeTemp(tmp);
    },
  };
}

// ---------------------------------------------------------------- the child's side

/** The arguments after `--child`, or undefined when this process is not a bench child. */
export function childArgs(): string[] | undefined {
  const i = process.argv.indexOf('--child');
  return i < 0 ? undefined : process.argv.slice(i + 1);
}

/** In the child: one `WORD payload` line for the parent. */
export function tellParent(word: string, payload = ''): void {
  process.stdout.write(`${word} ${payload}\n`);
}

let stdinLines: Interface | undefined;
let stdinClosed = false;
function parentInput(): Interface {
  if (!stdinLines) {
    stdinLines = createInterface({ input: process.stdin });
    stdinLines.once('close', () => (stdinClosed = true));
  }
  return stdinLines;
}

/** In the child: resolves when the parent sends `word`; rejects if the parent hangs up first. */
export function fromParent(word: string): Promise<void> {
  const input = parentInput();
  return new Promise((resolve, reject) => {
    if (stdinClosed) return reject(new Error(`parent hung up before sending ${word}`));
    const onLine = (l: string) => {
      if (l.trim() !== word) return;
      input.off('line', onLine).off('close', onClose);
      resolve();
    };
    const onClose = () => reject(new Error(`parent hung up before sending ${word}`));
    input.on('line', onLine).once('close', onClose);
  });
}

/** In the child: resolves once the parent has closed our stdin (at once if it already has). */
export function parentHungUp(): Promise<void> {
  const input = parentInput();
  return stdinClosed ? Promise.resolve() : new Promise((resolve) => input.once('close', () => resolve()));
}

/** In the child: runs `main`, prints its value as the RESULT line and exits (1 on an error). */
export function childMain(main: () => Promise<unknown>): void {
  main().then(
    (r) => {
      tellParent('RESULT', JSON.stringify(r ?? null));
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
