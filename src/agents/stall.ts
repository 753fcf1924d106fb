// Notices an agent going round in circles: the same tool call (or the same error) again and again. Pure.
import { describeEvent, type StreamEvent } from './protocol.js';

export class StallDetector {
  private last = '';
  private count = 0;

  constructor(private readonly threshold: number) {}

  /** Returns a stop reason once the same call has been seen `threshold` times in a row. */
  see(ev: StreamEvent): string | undefined {
    if (this.threshold <= 0) return undefined;
    let key: string;
    if (ev.kind === 'tool_use') key = `call:${ev.name}:${JSON.stringify(ev.input ?? null)}`;
    else if (ev.kind === 'text') key = `text:${ev.text.length}:${ev.text.slice(0, 512)}`;
    else return undefined; // results in between do not break a repetition of calls
    if (key === this.last) this.count++;
    else {
      this.last = key;
      this.count = 1;
    }
    if (this.count >= this.threshold)
      return `stalled: the agent repeated the same ${ev.kind === 'tool_use' ? 'tool call' : 'output'} ${this.count} times in a row: ${describeEvent(ev)}`;
    return undefined;
  }
}
