// Runs asynchronous jobs one after another per key, in the order they were added.
//
// Database calls yield, so two pieces of work that read and then write the same thing can
// interleave. Where order matters within this process (deliveries queued in event order, one
// workflow's steps, event-writing transactions), the work runs through one of these.

export class KeyedSerial {
  private readonly tails = new Map<string, Promise<void>>();

  /**
   * Runs `job` after every job added earlier under `key` has settled. The returned promise settles
   * with the job; a failing job does not stop the ones after it.
   */
  run<T>(key: string, job: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(key) ?? Promise.resolve()).then(job);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Resolves when every job added so far has settled. */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all(this.tails.values());
  }
}
