// A separate process that asks Factory's /health every 25 ms (one request at a time, each with a
// 2 s deadline) until it gets SIGTERM, then prints one JSON line: how many probes, how many failed,
// and the latency percentiles in ms. A separate process, so a frozen Factory cannot hide it.
//   node health-probe.mjs http://127.0.0.1:8100/health
const url = process.argv[2];
const INTERVAL_MS = 25;
const latencies = [];
const failures = [];
let running = true;

async function probeOnce() {
  const started = performance.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    if (res.status !== 200 && res.status !== 503) failures.push(`status ${res.status}`);
  } catch (err) {
    failures.push(String(err?.cause?.code ?? err?.name ?? err));
  }
  latencies.push(performance.now() - started);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function loop() {
  let next = performance.now();
  while (running) {
    await probeOnce();
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
  const sorted = [...latencies].sort((a, b) => a - b);
  const round = (n) => Math.round(n * 10) / 10;
  process.stdout.write(JSON.stringify({
    count: latencies.length, failures: failures.length, first_failures: failures.slice(0, 5),
    p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? 0),
  }) + '\n');
  process.exit(0);
});
process.stdout.write('ready\n');
