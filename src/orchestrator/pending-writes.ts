// Database writes started from synchronous callbacks (the agent runner's onStart and onEvent): they
// cannot be awaited where they start, so they are kept here, their failures logged, and the caller
// awaits them all before the writes that must come after.
export class PendingWrites {
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly onError: (err: unknown, what: string) => void) {}

  add(write: Promise<unknown>, what: string): void {
    const p: Promise<void> = write.then(
      () => undefined,
      (err: unknown) => this.onError(err, what),
    );
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  async settled(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }
}
