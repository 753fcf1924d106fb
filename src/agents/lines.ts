/**
 * Splits a byte stream into lines without ever holding more than maxLine bytes of one line: what a
 * line holds beyond the cap is counted and dropped as it arrives, so a 50 MiB line with no newline
 * costs maxLine bytes, not 50 MiB. `dropped` tells the consumer how many bytes it did not get.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private dropped = 0;

  constructor(
    private readonly maxLine: number,
    private readonly onLine: (line: string, dropped: number) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl === -1) {
        this.append(chunk.subarray(start));
        return;
      }
      if (this.size === 0 && this.dropped === 0 && nl - start <= this.maxLine) {
        // The common case, a whole line inside one chunk: decoded in place, no copy to join.
        this.onLine(decodeLine(chunk, start, nl), 0);
      } else {
        this.append(chunk.subarray(start, nl));
        this.emit();
      }
      start = nl + 1;
    }
  }

  /** Emits what is left after the stream ended. */
  end(): void {
    if (this.size > 0 || this.dropped > 0) this.emit();
  }

  private append(buf: Buffer): void {
    if (buf.length === 0) return;
    const room = this.maxLine - this.size;
    if (buf.length > room) this.dropped += buf.length - Math.max(0, room);
    if (room <= 0) return;
    // A copy: the chunk's memory is the stream's, and holding a slice would pin all of it.
    const take = buf.length > room ? buf.subarray(0, room) : buf;
    this.parts.push(Buffer.from(take));
    this.size += take.length;
  }

  private emit(): void {
    const joined = Buffer.concat(this.parts, this.size);
    const dropped = this.dropped;
    this.parts = [];
    this.size = 0;
    this.dropped = 0;
    this.onLine(decodeLine(joined, 0, joined.length), dropped);
  }
}

/** The line's text without its carriage return (CRLF output). */
function decodeLine(buf: Buffer, start: number, end: number): string {
  const stop = end > start && buf[end - 1] === 13 ? end - 1 : end;
  return buf.toString('utf8', start, stop);
}

/**
 * The last `capacity` lines, each kept to its first `maxChars` characters: the tail says how a run
 * ended (its last words, a limit message), and 200 whole lines of 1 MB would be 200 MB. A ring, so
 * keeping a line costs the same however many came before.
 */
export class LineTail {
  private readonly ring: string[] = [];
  private next = 0;

  constructor(
    private readonly capacity: number,
    private readonly maxChars = 4096,
  ) {}

  push(line: string): void {
    // A copy, not a slice: V8's slice of a string keeps the whole string it was cut from alive.
    const kept = line.length > this.maxChars ? Buffer.from(line.slice(0, this.maxChars)).toString() : line;
    if (this.ring.length < this.capacity) this.ring.push(kept);
    else this.ring[this.next] = kept;
    this.next = (this.next + 1) % this.capacity;
  }

  values(): string[] {
    if (this.ring.length < this.capacity) return [...this.ring];
    return [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }
}
