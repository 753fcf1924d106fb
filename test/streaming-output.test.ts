// Agent output is read with bounded buffers: a line longer than the cap is cut as it arrives (the
// rest counted, not kept), and what is kept is stored with a marker that says how much is missing.
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentEnv, type AgentEnv } from './agent-harness.js';
import { waitFor } from './helpers.js';
import { LineSplitter, LineTail } from '../src/agents/lines.js';
import { LogWriter } from '../src/orchestrator/log-writer.js';
import type { LogsRepo, NewLog } from '../src/db/repositories/logs.js';

const MiB = 1024 * 1024;
/** What the fake's long-line scenario writes before the run of "y" (see test/fakes/claude.mjs). */
const LONG_LINE_PREFIX = '{"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":"';
const STORED_LINE_CAP = 65_536;

function splitAll(chunks: Buffer[], maxLine: number): Array<{ line: string; dropped: number }> {
  const out: Array<{ line: string; dropped: number }> = [];
  const s = new LineSplitter(maxLine, (line, dropped) => out.push({ line, dropped }));
  for (const c of chunks) s.push(c);
  s.end();
  return out;
}

describe('LineSplitter', () => {
  it('finds the same lines whatever the chunk boundaries, multi-byte characters and CRLF included', () => {
    const text = 'first\r\nsecond — é ✓\n\nfourth line here\nno newline at the end';
    const whole = Buffer.from(text);
    const want = ['first', 'second — é ✓', '', 'fourth line here', 'no newline at the end'];
    for (const size of [1, 2, 3, 5, 7, whole.length]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < whole.length; i += size) chunks.push(whole.subarray(i, i + size));
      const got = splitAll(chunks, 1000);
      expect(got.map((g) => g.line)).toEqual(want);
      expect(got.every((g) => g.dropped === 0)).toBe(true);
    }
  });

  it('keeps maxLine bytes of an over-long line, counts the rest, and goes on with the next line', () => {
    const chunks = [Buffer.from('short\n'), ...Array.from({ length: 80 }, () => Buffer.alloc(64 * 1024, 'z')), Buffer.from('\nafter\n')];
    const got = splitAll(chunks, 1000);
    expect(got.map((g) => g.line.length)).toEqual([5, 1000, 5]);
    expect(got[1]).toEqual({ line: 'z'.repeat(1000), dropped: 80 * 64 * 1024 - 1000 });
    expect(got[2]).toEqual({ line: 'after', dropped: 0 });
  });

  it('emits a capped line that the stream ends inside of, once, at the end', () => {
    const got = splitAll([Buffer.from('x'.repeat(5000))], 100);
    expect(got).toEqual([{ line: 'x'.repeat(100), dropped: 4900 }]);
  });
});

describe('LineTail', () => {
  it('keeps the last lines in order, each cut to its first maxChars characters', () => {
    const tail = new LineTail(3, 10);
    expect(tail.values()).toEqual([]);
    tail.push('one');
    tail.push('two');
    expect(tail.values()).toEqual(['one', 'two']);
    for (let i = 0; i < 7; i++) tail.push(`line ${i} ${'x'.repeat(1_000_000)}`);
    expect(tail.values()).toEqual(['line 4 xxx', 'line 5 xxx', 'line 6 xxx']);
    tail.push('last');
    expect(tail.values()).toEqual(['line 5 xxx', 'line 6 xxx', 'last']);
  });
});

describe('LineTail memory', () => {
  it('keeps copies of the cut lines, not the whole lines they were cut from', () => {
    // V8 keeps a sliced string's parent alive: 50 tail entries cut from 1 MB lines would hold 50 MB.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const tail = new LineTail(50, 100);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 50; i++) tail.push(`${i} ${'m'.repeat(1_000_000)}`);
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    expect(tail.values()).toHaveLength(50);
    expect(grown).toBeLessThan(10 * MiB);
  });
});

describe('LogWriter back-pressure', () => {
  it('asks the reader to wait while more than 2 MiB is not stored, and lets it go on once the store caught up', async () => {
    const stores: Array<{ rows: NewLog[]; done(): void }> = [];
    const repo = {
      appendMany: (rows: NewLog[]) => new Promise<void>((done) => stores.push({ rows, done })),
    } as unknown as LogsRepo;
    const w = new LogWriter(repo, 1, (err) => {
      throw err;
    });
    const line = 'z'.repeat(16 * 1024);
    for (let i = 0; i < 100; i++) w.write('stdout', line); // 1.6 MiB: below the limit
    expect(w.backlog()).toBeNull();
    for (let i = 0; i < 40; i++) w.write('stdout', line); // 2.2 MiB handed on, none of it stored
    const wait = w.backlog();
    expect(wait).not.toBeNull();
    let released = false;
    void wait!.then(() => (released = true));
    // The store takes one batch (16 lines, 256 KiB) at a time, in order. 2.24 MiB were handed on;
    // the reader may go on below half the limit (1 MiB): after 5 batches are stored, not before.
    let storedBatches = 0;
    while (!released) {
      await waitFor(() => stores.length > storedBatches);
      expect(released).toBe(false);
      stores[storedBatches++]!.done();
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(storedBatches).toBe(5);
    expect(w.backlog()).toBeNull();
    const all = w.flush();
    while (storedBatches < stores.length || stores.length < 9) {
      await waitFor(() => stores.length > storedBatches);
      stores[storedBatches++]!.done();
    }
    await all;
    expect(stores.reduce((n, s) => n + s.rows.length, 0)).toBe(140);
  });
});

describe('agent output with very long lines, through the API', () => {
  let env: AgentEnv;
  beforeAll(async () => {
    env = await createAgentEnv({ overrides: { max_concurrent_agents: 1 } });
  });
  afterAll(async () => {
    await env.stopAll();
  });

  const stdoutLines = async (id: number): Promise<string[]> => {
    const r = await env.app.inject({ url: `/api/tasks/${id}/logs?limit=1000` });
    return (r.json() as { logs: Array<{ stream: string; message: string }> }).logs
      .filter((l) => l.stream === 'stdout')
      .map((l) => l.message);
  };
  const expectCapped = (line: string | undefined, totalBytes: number) => {
    expect(line?.startsWith(LONG_LINE_PREFIX)).toBe(true);
    expect(line).toBe(
      `${LONG_LINE_PREFIX}${'y'.repeat(STORED_LINE_CAP - LONG_LINE_PREFIX.length)}…[truncated: ${totalBytes - STORED_LINE_CAP} more bytes not stored]`,
    );
  };

  it('stores the start of a 50 MiB line with no newline and says how much of it is missing', async () => {
    const t = await env.createTask({ title: 'One endless line', description: '[fake:long-line mb=50 end=eof]' });
    const done = await env.waitStatus(t.id, ['failed', 'done'], 60_000);
    // No result event ever came: the run is a crash, but its output is there.
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/without a result/);
    expectCapped((await stdoutLines(t.id)).at(-1), LONG_LINE_PREFIX.length + 50 * MiB);
  });

  it('reads the result after a long line and finishes the task', async () => {
    const t = await env.createTask({ title: 'Long line then done', description: '[fake:long-line mb=8]' });
    const done = await env.waitStatus(t.id, ['failed', 'done'], 60_000);
    expect(done.error).toBe('');
    // The scenario changes no file: the task is done without a PR, its result read after the long line.
    expect(done.status).toBe('done');
    expect(done.result_summary).toMatch(/Long line complete/);
    const lines = await stdoutLines(t.id);
    const long = lines.find((l) => l.startsWith(LONG_LINE_PREFIX));
    const suffix = `"}]},"session_id":"`;
    // The line's end (its closing quote, braces and session id) is among what was not stored.
    const sessionIdLength = JSON.parse(lines.at(-1) ?? '{}').session_id?.length ?? 0;
    expectCapped(long, LONG_LINE_PREFIX.length + 8 * MiB + suffix.length + sessionIdLength + 2);
  });
});
