// A scripted fake of the Anthropic Messages API on 127.0.0.1, enough for the real Claude Code CLI
// (`ANTHROPIC_BASE_URL=<base> ANTHROPIC_API_KEY=sk-ant-test-dummy claude -p …`) to run its tool loop.
//
//   const api = new FakeAnthropicApi({ script: [{ toolUse: { name: 'Bash', input: { command: 'ls', description: 'list' } } }, { text: 'Done.' }] });
//   const base = await api.start(); …; await api.stop();
//
// Each request of the main conversation (POST /v1/messages carrying tools) takes the next turn of the
// script and is answered as a server-sent event stream (message_start, content_block_start/delta/stop,
// message_delta with stop_reason "tool_use" or "end_turn", message_stop), or as one JSON message when
// the request did not ask for a stream. Every other messages request (a "side" request: no tools, e.g. a
// title or a summary on a small model) gets a short text answer and takes nothing from the script.
// count_tokens gets an estimate; the CLI's connectivity probe (HEAD /) gets 200; anything else 404 in
// the API's error shape. Every request is logged in `requests`.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ToolUseTurn {
  name: string;
  input: Record<string, unknown>;
  /** Tool use id; a fresh one when absent. */
  id?: string;
}

/** One answer of the main conversation: text, a tool call, or text followed by a tool call. */
export interface Turn {
  text?: string;
  toolUse?: ToolUseTurn;
}

export type RequestKind = 'main' | 'side' | 'count_tokens' | 'probe' | 'other';

export interface ApiRequest {
  seq: number;
  at: number;
  method: string;
  url: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON body, or the raw text when it was not JSON (null when empty). */
  body: unknown;
  kind: RequestKind;
  stream: boolean;
  model: string;
  /** For main requests: the script turn it was answered with (null once the script ran out). */
  turn?: Turn | null;
  /** Events sent, in order (for streamed answers). */
  events: string[];
}

export interface FakeAnthropicApiOptions {
  script?: Turn[];
  /** The text side requests get. */
  sideText?: string;
  /** The text a main request gets once the script is empty. */
  exhaustedText?: string;
  /** Decides which messages requests belong to the main conversation (default: they carry tools). */
  isMain?(body: MessagesBody): boolean;
  /** Characters per text_delta / input_json_delta chunk (default 12), so the client really reassembles. */
  chunkChars?: number;
}

export interface MessagesBody {
  model?: string;
  stream?: boolean;
  tools?: Array<{ name?: string }>;
  messages?: Array<{ role: string; content: unknown }>;
  system?: unknown;
  [key: string]: unknown;
}

export interface ToolResultBlock {
  tool_use_id: string;
  content: unknown;
  is_error?: boolean;
}

/** The tool_result blocks of a messages request's last user message. */
export function toolResultsOf(body: unknown): ToolResultBlock[] {
  const msgs = (body as MessagesBody | null)?.messages;
  if (!Array.isArray(msgs)) return [];
  const lastUser = [...msgs].reverse().find((m) => m.role === 'user');
  if (!lastUser || !Array.isArray(lastUser.content)) return [];
  return (lastUser.content as Array<Record<string, unknown>>)
    .filter((b) => b?.type === 'tool_result')
    .map((b) => ({ tool_use_id: String(b.tool_use_id), content: b.content, is_error: b.is_error === true }));
}

/** Text of a tool_result's content (a string, or a list of text blocks). */
export function toolResultText(r: ToolResultBlock): string {
  if (typeof r.content === 'string') return r.content;
  if (Array.isArray(r.content)) return r.content.map((b: { text?: unknown }) => (typeof b?.text === 'string' ? b.text : '')).join('\n');
  return '';
}

function chunks(s: string, n: number): string[] {
  if (!s) return [''];
  const out: string[] = [];
  for (let i = 0; i < s.length; i += n) out.push(s.slice(i, i + n));
  return out;
}

export class FakeAnthropicApi {
  readonly requests: ApiRequest[] = [];
  readonly script: Turn[];
  private server: http.Server | null = null;
  private seq = 0;
  private ids = 0;
  private readonly opts: FakeAnthropicApiOptions;

  constructor(opts: FakeAnthropicApiOptions = {}) {
    this.opts = opts;
    this.script = [...(opts.script ?? [])];
  }

  /** Append turns to the script. */
  push(...turns: Turn[]): void {
    this.script.push(...turns);
  }

  mainRequests(): ApiRequest[] {
    return this.requests.filter((r) => r.kind === 'main');
  }

  async start(): Promise<string> {
    const server = http.createServer((req, res) => this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Resolves with the first logged request matching, polling until the deadline. */
  async waitFor(pred: (r: ApiRequest) => boolean, timeoutMs = 10_000): Promise<ApiRequest> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.requests.find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) {
        throw new Error(
          `no matching request to the fake Anthropic API within ${timeoutMs} ms; got: ${this.requests.map((r) => `${r.method} ${r.path} (${r.kind})`).join(', ') || 'none'}`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private newId(prefix: string): string {
    this.ids += 1;
    return `${prefix}_fake${String(this.ids).padStart(6, '0')}`;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(parts).toString('utf8');
      let body: unknown = null;
      if (raw) {
        try {
          body = JSON.parse(raw);
        } catch {
          body = raw;
        }
      }
      const url = req.url ?? '/';
      const path = url.split('?')[0] ?? '/';
      const mb = (body && typeof body === 'object' ? body : {}) as MessagesBody;
      const entry: ApiRequest = {
        seq: ++this.seq,
        at: Date.now(),
        method: req.method ?? 'GET',
        url,
        path,
        headers: req.headers,
        body,
        kind: 'other',
        stream: mb.stream === true,
        model: typeof mb.model === 'string' ? mb.model : '',
        events: [],
      };
      this.requests.push(entry);
      try {
        this.route(entry, mb, res);
      } catch (err) {
        this.error(res, 500, 'api_error', `fake failed: ${(err as Error).message}`);
      }
    });
  }

  private route(entry: ApiRequest, mb: MessagesBody, res: http.ServerResponse): void {
    if ((entry.method === 'HEAD' || entry.method === 'GET') && entry.path === '/') {
      entry.kind = 'probe';
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(entry.method === 'HEAD' ? undefined : 'ok');
      return;
    }
    if (entry.method === 'POST' && entry.path === '/v1/messages/count_tokens') {
      entry.kind = 'count_tokens';
      const size =
        JSON.stringify(mb.messages ?? []).length + JSON.stringify(mb.system ?? '').length + JSON.stringify(mb.tools ?? []).length;
      this.json(res, 200, { input_tokens: Math.max(1, Math.ceil(size / 4)) });
      return;
    }
    if (entry.method === 'POST' && entry.path === '/v1/messages') {
      const main = this.opts.isMain ? this.opts.isMain(mb) : Array.isArray(mb.tools) && mb.tools.length > 0;
      let turn: Turn;
      if (main) {
        entry.kind = 'main';
        const next = this.script.shift();
        entry.turn = next ?? null;
        turn = next ?? { text: this.opts.exhaustedText ?? 'Nothing more to do.' };
      } else {
        entry.kind = 'side';
        turn = { text: this.opts.sideText ?? 'OK' };
      }
      if (entry.stream) this.stream(entry, turn, res);
      else this.json(res, 200, this.message(entry, turn));
      return;
    }
    this.error(res, 404, 'not_found_error', `the fake Anthropic API has no ${entry.method} ${entry.path}`);
  }

  private usage(entry: ApiRequest) {
    const input = Math.max(1, Math.ceil(JSON.stringify(entry.body ?? '').length / 4));
    return { input_tokens: input, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  }

  private blocks(turn: Turn): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    if (turn.text !== undefined || !turn.toolUse) out.push({ type: 'text', text: turn.text ?? '' });
    if (turn.toolUse) {
      turn.toolUse.id ??= this.newId('toolu');
      out.push({ type: 'tool_use', id: turn.toolUse.id, name: turn.toolUse.name, input: turn.toolUse.input });
    }
    return out;
  }

  private outputTokens(turn: Turn): number {
    return Math.max(1, Math.ceil(((turn.text ?? '').length + JSON.stringify(turn.toolUse?.input ?? '').length) / 4));
  }

  private message(entry: ApiRequest, turn: Turn) {
    return {
      id: this.newId('msg'),
      type: 'message',
      role: 'assistant',
      model: entry.model || 'claude-fake',
      content: this.blocks(turn),
      stop_reason: turn.toolUse ? 'tool_use' : 'end_turn',
      stop_sequence: null,
      usage: { ...this.usage(entry), output_tokens: this.outputTokens(turn) },
    };
  }

  private stream(entry: ApiRequest, turn: Turn, res: http.ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'request-id': this.newId('req'),
    });
    const send = (type: string, data: Record<string, unknown>) => {
      entry.events.push(type);
      res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    };
    const n = this.opts.chunkChars ?? 12;
    send('message_start', {
      message: {
        id: this.newId('msg'),
        type: 'message',
        role: 'assistant',
        model: entry.model || 'claude-fake',
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: this.usage(entry),
      },
    });
    send('ping', {});
    this.blocks(turn).forEach((block, index) => {
      if (block.type === 'text') {
        send('content_block_start', { index, content_block: { type: 'text', text: '' } });
        for (const text of chunks(String(block.text), n)) send('content_block_delta', { index, delta: { type: 'text_delta', text } });
      } else {
        send('content_block_start', { index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } });
        for (const partial_json of chunks(JSON.stringify(block.input), n)) {
          send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json } });
        }
      }
      send('content_block_stop', { index });
    });
    send('message_delta', {
      delta: { stop_reason: turn.toolUse ? 'tool_use' : 'end_turn', stop_sequence: null },
      usage: { output_tokens: this.outputTokens(turn) },
    });
    send('message_stop', {});
    res.end();
  }

  private json(res: http.ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': this.newId('req') });
    res.end(JSON.stringify(body));
  }

  private error(res: http.ServerResponse, status: number, type: string, message: string): void {
    this.json(res, status, { type: 'error', error: { type, message } });
  }
}
