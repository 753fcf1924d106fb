// A fetch-based SSE client for tests: records every event and comment of one stream.
import { waitFor } from './helpers.js';

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

export class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  headers: Headers | undefined;
  status = 0;
  ended = false;
  private readonly ctrl = new AbortController();

  constructor(
    readonly url: string,
    private readonly reqHeaders: Record<string, string> = {},
  ) {}

  async open(): Promise<this> {
    const res = await fetch(this.url, { headers: this.reqHeaders, signal: this.ctrl.signal });
    this.status = res.status;
    this.headers = res.headers;
    if (!res.body) throw new Error('no body');
    void this.pump(res.body);
    return this;
  }

  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let cur: SseEvent = { event: 'message', data: '' };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (cur.data !== '' || cur.id !== undefined) this.events.push(cur);
            cur = { event: 'message', data: '' };
          } else if (line.startsWith(':')) this.comments.push(line);
          else {
            const i = line.indexOf(':');
            const field = line.slice(0, i);
            const val = line.slice(i + 2);
            if (field === 'id') cur.id = val;
            else if (field === 'event') cur.event = val;
            else if (field === 'data') cur.data = val;
          }
        }
      }
    } catch {
      // aborted
    }
    this.ended = true;
  }

  of(kind: string): SseEvent[] {
    return this.events.filter((e) => e.event === kind);
  }

  messages(): Array<{ id: number; message: string; task_id: number | null; message_type: string }> {
    return this.of('message').map((e) => JSON.parse(e.data));
  }

  waitFor<T>(fn: (c: this) => T, what: string, timeoutMs = 10_000) {
    return waitFor(() => fn(this), { timeoutMs, what, intervalMs: 10 });
  }

  close(): void {
    this.ctrl.abort();
  }
}
