// The only way out of a sandboxed agent's network namespace: two Unix sockets bound into the
// sandbox. One is an HTTP proxy (CONNECT for TLS, absolute-URI requests for plain HTTP) that lets
// through only hosts on the task's allowlist; the other relays to Factory's own API (factory-env).
// Hand-written: no kept library offers a filtering forward proxy, and this is a few dozen lines of
// node:http and node:net.
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

/** Whether `host:port` matches one of `patterns` (`host`, `host:port`, `*.domain[:port]`). */
export function hostAllowed(patterns: readonly string[], host: string, port: number): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return patterns.some((p) => {
    const m = /^(\*\.)?([^:]+)(?::(\d+))?$/.exec(p.toLowerCase());
    if (!m) return false;
    const [, wildcard, name, portText] = m;
    const portOk = portText ? Number(portText) === port : port === 443 || port === 80;
    const nameOk = wildcard ? h.endsWith(`.${name}`) : h === name;
    return portOk && nameOk;
  });
}

export interface EgressOptions {
  /** Host patterns the agent may reach. */
  allow: readonly string[];
  /** host:port of Factory's API, relayed as-is (no allowlist: it is Factory itself). */
  api: { host: string; port: number } | null;
  logger: Logger;
  /** Called once per refused destination, e.g. to tell the task log. */
  onRefused?(destination: string): void;
  /** Directory for the sockets (one fresh subdirectory per task). */
  root: string;
}

export interface Egress {
  /** Host directory holding proxy.sock and api.sock, to bind into the sandbox. */
  dir: string;
  close(): Promise<void>;
}

function splitHostPort(target: string, defaultPort: number): { host: string; port: number } | null {
  const m = /^\[?([^\]]+?)\]?(?::(\d{1,5}))?$/.exec(target);
  if (!m) return null;
  return { host: m[1]!, port: m[2] ? Number(m[2]) : defaultPort };
}

function listenUnix(server: Server | ReturnType<typeof createNetServer>, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => resolve());
  });
}

export async function startEgress(o: EgressOptions): Promise<Egress> {
  const dir = mkdtempSync(path.join(o.root, 'egress-'));
  const refuse = (destination: string) => {
    o.logger.warn({ destination }, 'sandboxed agent: connection refused (not on the network allowlist)');
    o.onRefused?.(destination);
  };
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };

  const proxy = createHttpServer((req, res) => forwardPlain(req, res));
  const forwardPlain = (req: IncomingMessage, res: import('node:http').ServerResponse) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end('absolute URL expected\n');
      return;
    }
    const port = Number(url.port) || 80;
    if (url.protocol !== 'http:' || !hostAllowed(o.allow, url.hostname, port)) {
      refuse(`${url.hostname}:${port}`);
      res
        .writeHead(403, { 'content-type': 'text/plain' })
        .end(`factory sandbox: ${url.hostname}:${port} is not on the network allowlist\n`);
      return;
    }
    const upstream = httpRequest(
      { host: url.hostname, port, method: req.method, path: `${url.pathname}${url.search}`, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  };
  proxy.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    track(client);
    const target = splitHostPort(req.url ?? '', 443);
    if (!target || !hostAllowed(o.allow, target.host, target.port)) {
      refuse(req.url ?? '?');
      client.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\n\r\nnot on the network allowlist\n');
      return;
    }
    const upstream = connect(target.port, target.host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    track(upstream);
    upstream.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'));
    client.on('error', () => upstream.destroy());
  });
  proxy.on('clientError', (_err, socket) => socket.destroy());

  const api = createNetServer((client) => {
    track(client);
    if (!o.api) return void client.destroy();
    const upstream = connect(o.api.port, o.api.host);
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });

  await listenUnix(proxy, path.join(dir, 'proxy.sock'));
  await listenUnix(api, path.join(dir, 'api.sock'));
  return {
    dir,
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all([new Promise((r) => proxy.close(r)), new Promise((r) => api.close(r))]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
