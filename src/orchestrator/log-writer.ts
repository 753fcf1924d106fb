import type { LogsRepo, LogStream, NewLog } from '../db/repositories/logs.js';
import { scrub } from '../secrets.js';

const MAX_STORED_LINE = 65_536;

/** The stored form of an over-long line: its start and how many bytes of it are not stored. */
function truncated(line: string, droppedBytes: number): string {
  const kept = line.slice(0, MAX_STORED_LINE);
  const omitted = droppedBytes + Buffer.byteLength(line) - Buffer.byteLength(kept);
  return `${kept}…[truncated: ${omitted} more bytes not stored]`;
}

/**
 * Past this many bytes written but not yet stored, `backlog()` asks the reader to wait. The store may
 * be slower than the agent (PostgreSQL across the network, a stalled disk): without a limit a flood
 * of output piles up in memory. A failed batch counts as done (its error is reported), so a store
 * that is down never keeps the reader waiting for good.
 */
const MAX_UNSTORED_BYTES = 2 * 1024 * 1024;

/** Buffers a task's log lines and writes them in batches (by count or time). */
export class LogWriter {
  private buf: NewLog[] = [];
  private bytes = 0;
  /** Bytes handed to the store and not yet stored, plus what is buffered. */
  private unstored = 0;
  private drainWaiters: Array<() => void> = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly repo: LogsRepo,
    private readonly taskId: number,
    private readonly onError: (err: unknown) => void,
    private readonly maxBatch = 500,
    private readonly maxDelayMs = 200,
  ) {}

  /** `droppedBytes`: what the reader already cut off the line, named in the stored line's marker. */
  write(stream: LogStream, line: string, droppedBytes = 0): void {
    const text = line.length > MAX_STORED_LINE || droppedBytes > 0 ? truncated(line, droppedBytes) : line;
    this.buf.push({ task_id: this.taskId, ts: new Date().toISOString(), stream, line: scrub(text) });
    this.bytes += text.length;
    this.unstored += text.length;
    // By count and by size: a flood of long lines must not pile up in memory between flushes.
    if (this.buf.length >= this.maxBatch || this.bytes >= 256 * 1024) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.maxDelayMs);
  }

  system(line: string): void {
    this.write('system', line);
  }

  /** A promise to wait for before reading more output when too much is not stored yet; else null. */
  backlog(): Promise<void> | null {
    if (this.unstored < MAX_UNSTORED_BYTES) return null;
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Writes what is buffered; resolves when it and every earlier batch are stored (in order). */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.buf.length) return this.writing;
    const batch = this.buf;
    const size = this.bytes;
    this.buf = [];
    this.bytes = 0;
    // One batch after another: line ids keep the order the lines were written in.
    this.writing = this.writing
      .then(() => this.repo.appendMany(batch))
      .catch((err: unknown) => this.onError(err))
      .finally(() => this.stored(size));
    return this.writing;
  }

  /** A batch is stored (or failed, and was reported): the reader may go on below half the limit. */
  private stored(size: number): void {
    this.unstored -= size;
    if (this.unstored >= MAX_UNSTORED_BYTES / 2 || !this.drainWaiters.length) return;
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }
}
