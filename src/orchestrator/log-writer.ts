import type { LogsRepo, LogStream, NewLog } from '../db/repositories/logs.js';
import { scrub } from '../secrets.js';

const MAX_STORED_LINE = 65_536;

/** Buffers a task's log lines and writes them in batches (by count or time). */
export class LogWriter {
  private buf: NewLog[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly repo: LogsRepo,
    private readonly taskId: number,
    private readonly onError: (err: unknown) => void,
    private readonly maxBatch = 500,
    private readonly maxDelayMs = 200,
  ) {}

  write(stream: LogStream, line: string): void {
    const text =
      line.length > MAX_STORED_LINE ? `${line.slice(0, MAX_STORED_LINE)}…[truncated ${line.length - MAX_STORED_LINE} chars]` : line;
    this.buf.push({ task_id: this.taskId, ts: new Date().toISOString(), stream, line: scrub(text) });
    this.bytes += text.length;
    // By count and by size: a flood of long lines must not pile up in memory between flushes.
    if (this.buf.length >= this.maxBatch || this.bytes >= 256 * 1024) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.maxDelayMs);
  }

  system(line: string): void {
    this.write('system', line);
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.buf.length) return;
    const batch = this.buf;
    this.buf = [];
    this.bytes = 0;
    try {
      this.repo.appendMany(batch);
    } catch (err) {
      this.onError(err);
    }
  }
}
