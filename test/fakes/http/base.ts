// Shared loopback HTTP server for the test fakes (node:http only). Records every request, supports
// `:param` routes, injected failures (failNext / setDown) and deadline-bounded polling (waitFor).
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  headers: IncomingHttpHeaders;
  rawBody: string;
  /** Parsed JSON body (JSON content types, or an untyped body that parses), else undefined. */
  json: unknown;
  /** Parsed application/x-www-form-urlencoded body, else undefined. */
  form: Record<string, string> | undefined;
  /** Epoch milliseconds when the request was received. */
  at: number;
  /** True when the request was answered by failNext/setDown instead of a route. */
  failed?: boolean;
  /** Status code that was sent back (set once the response is written). */
  status?: number;
}

export interface RouteRequest extends RecordedRequest {
  params: Record<string, string>;
  /** Aborted when the client goes away (useful for long-poll handlers). */
  signal: AbortSignal;
}

export interface Reply {
  status?: number;
  /** Serialized as JSON. */
  json?: unknown;
  /** Sent verbatim (text/plain unless a content-type header is given). */
  text?: string;
  headers?: Record<string, string>;
}

/** An injected answer for setFault: status, headers and body (default: the fake's error envelope). */
export interface Fault {
  status: number;
  headers?: Record<string, string>;
  json?: unknown;
  /** Only requests this returns true for get the fault (default: every request). */
  when?: (r: RecordedRequest) => boolean;
}

export type Handler = (req: RouteRequest) => Reply | Promise<Reply>;

interface Route {
  method: string;
  regex: RegExp;
  names: string[];
  handler: Handler;
}

export interface FakeServerOptions {
  /** Fixed artificial latency added before every response (ms). */
  delayMs?: number;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function stripSlash(p: string): string {
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

/** Compiles '/repos/:owner/:repo' (also 'bot:token' inside a segment) to a regex; trailing '/' optional. */
function compile(pattern: string): { regex: RegExp; names: string[] } {
  const names: string[] = [];
  const parts = stripSlash(pattern).split(/(:[A-Za-z_][A-Za-z0-9_]*)/);
  const body = parts
    .map((part) => {
      if (part.startsWith(':')) {
        names.push(part.slice(1));
        return '([^/]+)';
      }
      return escapeRegex(part);
    })
    .join('');
  return { regex: new RegExp(`^${body}/?$`), names };
}

/** Polls `check` every `intervalMs` until it returns a value other than undefined/false, or the deadline. */
export async function pollUntil<T>(check: () => T | undefined | false, timeoutMs = 5000, what = 'condition', intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() >= deadline) throw new Error(`Timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export class FakeServer {
  readonly requests: RecordedRequest[] = [];
  /** Base URL (http://127.0.0.1:PORT) once started. */
  url = '';
  delayMs: number;
  private server: Server | undefined;
  private routes: Route[] = [];
  private failCount = 0;
  private failStatus = 500;
  private failHeaders: Record<string, string> = {};
  private down = false;
  private fault: Fault | null = null;
  private hanging = false;
  private readonly held = new Set<ServerResponse>();
  private readonly aborters = new Set<AbortController>();

  constructor(opts: FakeServerOptions = {}) {
    this.delayMs = opts.delayMs ?? 0;
  }

  route(method: string, pattern: string, handler: Handler): this {
    const { regex, names } = compile(pattern);
    this.routes.push({ method: method.toUpperCase(), regex, names, handler });
    return this;
  }

  /** The next `n` requests are answered with `status` (recorded with failed:true). */
  failNext(n: number, status = 500, headers: Record<string, string> = {}): void {
    this.failCount = n;
    this.failStatus = status;
    this.failHeaders = headers;
  }

  /** While down every request gets a 500 (recorded with failed:true). */
  setDown(down: boolean): void {
    this.down = down;
  }

  /**
   * Until cleared, every request matching `fault.when` (default: all) is answered with the fault's
   * status, headers and body instead of its route (recorded with failed:true). For faults that last
   * as long as a test wants, unlike failNext's count.
   */
  setFault(fault: Fault | null): void {
    this.fault = fault;
  }

  /**
   * A server that accepts a request and never answers (a stuck proxy). Requests matching `when`
   * are recorded and held open; turning it off drops the held connections (the client sees a reset,
   * as when such a proxy finally gives up), so nothing held is ever processed — unless `applied`:
   * then the request is carried out first and only its answer is lost (did the POST create it?).
   */
  setHanging(on: boolean, when?: (r: RecordedRequest) => boolean, opts: { applied?: boolean } = {}): void {
    this.hanging = on;
    this.hangWhen = when;
    this.hangApplied = opts.applied ?? false;
    if (!on) {
      for (const res of this.held) res.socket?.destroy();
      this.held.clear();
    }
  }

  private hangWhen: ((r: RecordedRequest) => boolean) | undefined;
  private hangApplied = false;

  /** Requests currently held by setHanging. */
  get heldCount(): number {
    return this.held.size;
  }

  get isDown(): boolean {
    return this.down;
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  /** Resolves with the first recorded request matching `predicate` (including ones already recorded). */
  waitFor(predicate: (r: RecordedRequest) => boolean, timeoutMs = 5000): Promise<RecordedRequest> {
    return pollUntil(() => this.requests.find(predicate), timeoutMs, 'a matching request');
  }

  /** Body sent for injected failures; subclasses mimic their API's error envelope. */
  protected failureBody(status: number): unknown {
    return { message: status >= 500 ? 'Internal Server Error' : 'Simulated failure' };
  }

  protected notFoundBody(req: RecordedRequest): unknown {
    return { message: 'Not Found', path: req.path };
  }

  /** Runs before routing; return a Reply to short-circuit (e.g. authentication). */
  protected guard(_req: RouteRequest): Reply | undefined {
    return undefined;
  }

  /** Listens on 127.0.0.1; pass the previous port to come back after stop() (a refused-connection outage). */
  async start(port = 0): Promise<string> {
    if (this.server) return this.url;
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent && !res.destroyed) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ message: `fake server error: ${String(err)}` }));
        }
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    const bound = (server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${bound}`;
    return this.url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const a of this.aborters) a.abort();
    this.aborters.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const query: Record<string, string | string[]> = {};
    for (const [k, v] of url.searchParams) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    const ctype = String(req.headers['content-type'] ?? '').toLowerCase();
    let json: unknown;
    let form: Record<string, string> | undefined;
    if (rawBody && (ctype.includes('json') || (!ctype && /^\s*[[{]/.test(rawBody)))) {
      try {
        json = JSON.parse(rawBody);
      } catch {
        json = undefined;
      }
    }
    if (ctype.includes('application/x-www-form-urlencoded')) {
      form = Object.fromEntries(new URLSearchParams(rawBody));
    }
    const rec: RecordedRequest = {
      method: (req.method ?? 'GET').toUpperCase(),
      path: url.pathname,
      query,
      headers: req.headers,
      rawBody,
      json,
      form,
      at: Date.now(),
    };
    this.requests.push(rec);
    const aborter = new AbortController();
    this.aborters.add(aborter);
    res.on('close', () => {
      aborter.abort();
      this.aborters.delete(aborter);
    });

    if (this.hanging && (!this.hangWhen || this.hangWhen(rec))) {
      rec.failed = true;
      if (this.hangApplied) await this.dispatch(rec, aborter.signal);
      this.held.add(res);
      res.on('close', () => this.held.delete(res));
      return;
    }
    let reply: Reply;
    const fault = this.fault && (!this.fault.when || this.fault.when(rec)) ? this.fault : null;
    if (fault) {
      rec.failed = true;
      reply = { status: fault.status, json: fault.json ?? this.failureBody(fault.status), headers: fault.headers ?? {} };
    } else if (this.down || this.failCount > 0) {
      const status = this.down ? 500 : this.failStatus;
      if (!this.down) this.failCount--;
      rec.failed = true;
      reply = { status, json: this.failureBody(status), headers: this.down ? {} : this.failHeaders };
    } else {
      reply = await this.dispatch(rec, aborter.signal);
    }
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    rec.status = reply.status ?? 200;
    if (res.destroyed || res.writableEnded) return;
    const headers: Record<string, string> = { ...(reply.headers ?? {}) };
    let payload = '';
    if (reply.json !== undefined) {
      payload = JSON.stringify(reply.json);
      headers['content-type'] ??= 'application/json; charset=utf-8';
    } else if (reply.text !== undefined) {
      payload = reply.text;
      headers['content-type'] ??= 'text/plain; charset=utf-8';
    }
    res.writeHead(rec.status, headers);
    res.end(payload);
  }

  private async dispatch(rec: RecordedRequest, signal: AbortSignal): Promise<Reply> {
    const path = stripSlash(rec.path);
    let methodMismatch = false;
    for (const r of this.routes) {
      const m = r.regex.exec(path) ?? r.regex.exec(rec.path);
      if (!m) continue;
      if (r.method !== rec.method && r.method !== '*') {
        methodMismatch = true;
        continue;
      }
      const params: Record<string, string> = {};
      r.names.forEach((n, i) => {
        params[n] = decodeURIComponent(m[i + 1] ?? '');
      });
      const routeReq: RouteRequest = { ...rec, params, signal };
      const denied = this.guard(routeReq);
      if (denied) return denied;
      return r.handler(routeReq);
    }
    if (methodMismatch) return { status: 405, json: { message: 'Method Not Allowed' } };
    return { status: 404, json: this.notFoundBody(rec) };
  }
}

/** Reads a string field from a parsed JSON body (or undefined). */
export function field(body: unknown, key: string): unknown {
  return body && typeof body === 'object' ? (body as Record<string, unknown>)[key] : undefined;
}
