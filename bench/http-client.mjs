// Closed-loop HTTP load generator, run in a worker thread so it does not share an event loop with
// the server under test. `concurrency` keep-alive connections each send the next GET as soon as the
// previous response has been read completely, for `durationMs`. Plain JS: workers need no loader.
import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

const { url, concurrency, durationMs } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const latencies = [];
let requests = 0;
let errors = 0;
let bytes = 0;

function once() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.get(url, { agent }, (res) => {
      let n = 0;
      res.on('data', (c) => {
        n += c.length;
      });
      res.on('end', () => {
        if (res.statusCode === 200) {
          requests++;
          bytes += n;
          latencies.push(performance.now() - t0);
        } else errors++;
        resolve();
      });
      res.on('error', () => {
        errors++;
        resolve();
      });
    });
    req.on('error', () => {
      errors++;
      resolve();
    });
  });
}

const start = performance.now();
const deadline = start + durationMs;
async function loop() {
  while (performance.now() < deadline) await once();
}
await Promise.all(Array.from({ length: concurrency }, loop));
const elapsed = performance.now() - start;
agent.destroy();
latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] : NaN);
parentPort.postMessage({ requests, errors, bytes, elapsedMs: elapsed, rps: requests / (elapsed / 1000), p50: pct(50), p99: pct(99) });
