// A separate process that asks Factory's /health every 25 ms (one request at a time, each with a
// 2 s deadline) until it gets SIGTERM, then prints one JSON line: how many probes, how many failed,
// and the latency percentiles in ms. A separate process, so a frozen Factory cannot hide it.
//
// Between Factory probes it asks a bare Node HTTP server in a process of its own (the control), the
// same way. On a loaded 2-core CI machine every process waits for a core now and then; the control's
// latencies show how much of Factory's is the machine's, so the bar can be "Factory within 100 ms
// of a process that does nothing" rather than a number that only an idle machine can meet.
//   node health-probe.mjs http://127.0.0.1:8100/health
import { spawn } from 'node:child_process';

const url = process.argv[2];
const INTERVAL_MS = 25;
const CONTROL_SERVER = `
  const s = require('node:http').createServer((q, r) => r.end('{"status":"ok"}'));
  s.listen(0, '127.0.0.1', () => process.stdout.write(String(s.address().port) + '\\n'));
  process.on('disconnect', () => process.exit(0));`;

function startControl() {
  const child = spawn(process.execPath, ['-e', CONTROL_SERVER], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  return new Promise((resolve) => child.stdout.once('data', (c) => resolve({ child, url: `http://127.0.0.1:${String(c).trim()}/` })));
}

function newSeries() {
  return { latencies: [], failures: [] };
}

async function probeOnce(target, series) {
  const started = performance.now();
  try {
    const res = await fetch(target, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    if (res.status !== 200 && res.status !== 503) series.failures.push(`status ${res.status}`);
  } catch (err) {
    series.failures.push(String(err?.cause?.code ?? err?.name ?? err));
  }
  series.latencies.push(performance.now() - started);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(series) {
  const sorted = [...series.latencies].sort((a, b) => a - b);
  const round = (n) => Math.round(n * 10) / 10;
  return {
    count: sorted.length,
    failures: series.failures.length,
    first_failures: series.failures.slice(0, 5),
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? 0),
  };
}

const control = await startControl();
const factory = newSeries();
const baseline = newSeries();
let running = true;

async function loop() {
  let next = performance.now();
  while (running) {
    await probeOnce(url, factory);
    await probeOnce(control.url, baseline);
    next += INTERVAL_MS;
    const wait = next - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    else next = performance.now(); // a slow probe: start the next one at once, do not burst to catch up
  }
}

const done = loop();
process.on('SIGTERM', async () => {
  running = false;
  await done;
  control.child.disconnect();
  process.stdout.write(JSON.stringify({ ...summary(factory), control: summary(baseline) }) + '\n');
  process.exit(0);
});
process.stdout.write('ready\n');
