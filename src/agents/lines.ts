// Splits a byte stream into lines without ever holding more than maxLine bytes of one line.
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private truncated = false;

  constructor(
    private readonly maxLine: number,
    private readonly onLine: (line: string, truncated: boolean) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl === -1) {
        this.append(chunk.subarray(start));
        return;
      }
      this.append(chunk.subarray(start, nl));
      this.emit();
      start = nl + 1;
    }
  }

  /** Emits what is left after the stream ended. */
  end(): void {
    if (this.size > 0 || this.truncated) this.emit();
  }

  private append(buf: Buffer): void {
    if (buf.length === 0) return;
    const room = this.maxLine - this.size;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const take = buf.length > room ? buf.subarray(0, room) : buf;
    if (take.length < buf.length) this.truncated = true;
    this.parts.push(Buffer.from(take));
    this.size += take.length;
  }

  private emit(): void {
    const line = Buffer.concat(this.parts, this.size).toString('utf8').replace(/\r$/, '');
    const truncated = this.truncated;
    this.parts = [];
    this.size = 0;
    this.truncated = false;
    this.onLine(line, truncated);
  }
}

/** Keeps the last `capacity` items. */
export class Tail<T> {
  private items: T[] = [];
  constructor(private readonly capacity: number) {}
  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity * 2) this.items = this.items.slice(-this.capacity);
  }
  values(): T[] {
    return this.items.slice(-this.capacity);
  }
}
