// SSE fan-out benchmark: N subscribers on loopback, M messages posted one after another; latency is
// POST start → frame parsed at each subscriber. Compared with a bare node:http server that writes the
// same frame to the same number of clients when it receives a POST. Clients run in a worker thread so
// they do not share the servers' event loop.
//
//   npx tsx bench/sse-fanout.ts [clients=1000] [messages=50]
import { messageRoutes } from '../src/server/routes/messages.js';
import { createServer, request, Agent, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { loadConfig } from '../src/config.js';
import { createServices } from '../src/composition/root.js';
import { buildApp } from '../src/server/app.js';
import { createBoard } from '../src/board/index.js';

const CLIENTS = Number(process.argv[2] ?? 1000);
const MESSAGES = Number(process.argv[3] ?? 50);
/** Messages sent first and not measured (JIT, socket buffers). */
const WARMUP = 5;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const now = () => performance.timeOrigin + performance.now();

// Never outlive the budget, whatever happens.
setTimeout(() => {
  console.error('bench: timed out after 55 s');
  process.exit(1);
}, 55_000).unref();

/** Plain JS run in a worker: opens the clients, reports when all are connected and per message when all got it. */
const CLIENT_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const { port, path, n } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const now = () => performance.timeOrigin + performance.now();
const got = new Map(); // seq -> times[]
let ready = 0;
for (let i = 0; i < n; i++) {
  const req = http.get({ host: '127.0.0.1', port, path, agent, headers: { accept: 'text/event-stream' } }, (res) => {
    res.setEncoding('utf8');
    let buf = '';
    let first = true;
    res.on('data', (chunk) => {
      const t = now();
      if (first) { first = false; if (++ready === n) parentPort.postMessage({ type: 'ready' }); }
      buf += chunk;
      let end;
      while ((end = buf.indexOf('\\n\\n')) >= 0) {
        const frame = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const m = /"message":"bench:(\\d+)"/.exec(frame);
        if (!m) continue;
        const seq = Number(m[1]);
        let arr = got.get(seq);
        if (!arr) got.set(seq, arr = []);
        arr.push(t);
        if (arr.length === n) { parentPort.postMessage({ type: 'done', seq, times: arr }); got.delete(seq); }
      }
    });
  });
  req.on('error', (e) => parentPort.postMessage({ type: 'error', message: String(e) }));
}
`;

interface Result {
  p50: number;
  p99: number;
  max: number;
  mean: number;
  msgsPerSec: number;
}

async function measure(port: number, streamPath: string, post: (seq: number) => Promise<void>): Promise<Result> {
  const worker = new Worker(CLIENT_CODE, { eval: true, workerData: { port, path: streamPath, n: CLIENTS } });
  const waiters = new Map<number, (times: number[]) => void>();
  let onReady!: () => void;
  const ready = new Promise<void>((r) => {
    onReady = r;
  });
  worker.on('message', (m: { type: string; seq: number; times: number[]; message: string }) => {
    if (m.type === 'ready') onReady();
    else if (m.type === 'done') waiters.get(m.seq)?.(m.times);
    else if (m.type === 'error') {
      console.error('client error:', m.message);
      process.exit(1);
    }
  });
  await ready;
  const latencies: number[] = [];
  let started = now();
  for (let seq = 0; seq < WARMUP + MESSAGES; seq++) {
    const delivered = new Promise<number[]>((r) => waiters.set(seq, r));
    const t0 = now();
    await post(seq);
    const times = await delivered;
    if (seq === WARMUP - 1) started = now();
    if (seq >= WARMUP) for (const t of times) latencies.push(t - t0);
  }
  const elapsed = (now() - started) / 1000;
  await worker.terminate();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return {
    p50: q(0.5),
    p99: q(0.99),
    max: latencies.at(-1)!,
    mean: latencies.reduce((a, b) => a + b, 0) / latencies.length,
    msgsPerSec: MESSAGES / elapsed,
  };
}

const agent = new Agent({ keepAlive: true });
function httpPost(port: number, url: string, body: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: url,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`POST ${url}: ${res.statusCode}`))));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function benchFactory(): Promise<Result> {
  const dir = mkdtempSync(path.join(tmpdir(), 'factory-bench-'));
  const config = loadConfig({
    configPath: path.join(ROOT, 'config.yml'),
    cwd: ROOT,
    env: {},
    dotenv: false,
    overrides: { data_dir: path.join(dir, 'data'), log_level: 'silent', message_board: { telegram_forward: false } },
  });
  const services = await createServices(config, pino({ level: 'silent' }), { executor: async () => ({ status: 'done' }) });
  const board = createBoard(services);
  const app = await buildApp(services, { plugins: [messageRoutes(board)] });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  try {
    return await measure(port, '/api/messages/stream/sse', (seq) =>
      httpPost(port, '/api/messages', { sender: 'bench', message: `bench:${seq}` }),
    );
  } finally {
    const closing = app.close();
    app.server.closeAllConnections();
    await closing;
    await services.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The floor: parse the POST, write one prebuilt-per-message frame to every open response. */
async function benchBare(): Promise<Result> {
  const clients = new Set<ServerResponse>();
  let id = 0;
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write('retry: 3000\nevent: connected\ndata: {}\n\n');
      clients.add(res);
      res.on('close', () => clients.delete(res));
      return;
    }
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const m = JSON.parse(body) as { sender: string; message: string };
      const msg = {
        id: ++id,
        sender: m.sender,
        recipient: null,
        task_id: null,
        workflow_id: null,
        message: m.message,
        message_type: 'info',
        reply_to: null,
        created_at: new Date().toISOString(),
      };
      const frame = `id: ${id}\nevent: message\ndata: ${JSON.stringify(msg)}\n\n`;
      for (const c of clients) c.write(frame);
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify(msg));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    return await measure(port, '/stream', (seq) => httpPost(port, '/publish', { sender: 'bench', message: `bench:${seq}` }));
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

const fmt = (n: number) => n.toFixed(2).padStart(8);
const started = Date.now();
const bare = await benchBare();
const factory = await benchFactory();
console.log(
  `SSE fan-out: ${CLIENTS} subscribers, ${MESSAGES} messages posted sequentially (after ${WARMUP} warm-up; latency = POST start -> frame parsed at every subscriber, ms)`,
);
console.log('                 p50      p99      max     mean   msgs/s');
for (const [name, r] of [
  ['bare node:http', bare],
  ['factory', factory],
] as const) {
  console.log(`${name.padEnd(14)} ${fmt(r.p50)} ${fmt(r.p99)} ${fmt(r.max)} ${fmt(r.mean)} ${fmt(r.msgsPerSec)}`);
}
console.log(
  `ratio factory/bare: p50 ${(factory.p50 / bare.p50).toFixed(2)}x, p99 ${(factory.p99 / bare.p99).toFixed(2)}x  (${((Date.now() - started) / 1000).toFixed(1)} s total)`,
);
agent.destroy();
process.exit(0);
