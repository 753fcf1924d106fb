// `npm run bench`: every benchmark in sequence, one table at the end. BENCH_QUICK=1 shrinks them.
// A benchmark that throws gets an error row; the others still run. A watchdog ends the whole run
// if it ever overstays (each benchmark is bounded on its own; this is the last line of defence).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { QUICK, ROOT, exited, formatTable, log, nowMs, round, type Row } from './lib.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WATCHDOG_MS = 12 * 60_000;

const BENCHMARKS = ['agent-start', 'full-task', 'flood-rss', 'many-agents', 'api-throughput', 'boot', 'growth', 'sse-fanout'];

function machine(): string {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? model;
  } catch {
    /* not Linux */
  }
  return `${cpus().length} CPUs (${model}), Node ${process.version}, ${process.platform}/${process.arch}`;
}

const SCRIPT_TIMEOUT_MS = 120_000;
const EXPORTS_RUN = /export\s+(async\s+)?function\s+run\b|export\s+(const|let)\s+run\b|export\s*\{[^}]*\brun\b/;

/**
 * A benchmark written as a top-level script (no `run()` export; it may call process.exit) cannot be
 * imported without ending this process, so it runs as `node --import tsx <file>` in a child with a
 * time limit. Its output is passed through; a `bare…`/`factory…` p50/p99 table in it becomes rows.
 */
async function runScript(name: string, file: string): Promise<Row[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString('utf8');
    process.stdout.write(c);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), SCRIPT_TIMEOUT_MS);
  await exited(child);
  clearTimeout(timer);
  if (child.exitCode !== 0) throw new Error(`${name} exited ${child.exitCode ?? child.signalCode}`);
  const cols = (label: RegExp) => label.exec(out)?.slice(1).map(Number);
  const bare = cols(/^bare[^\n]*?\s([\d.]+)\s+([\d.]+)/m);
  const fac = cols(/^factory\s+([\d.]+)\s+([\d.]+)/m);
  if (!bare || !fac || !/p50\s+p99/.test(out)) return [errRow(name, 'ran as a script (no run() export); see its output above')];
  return [
    { name: `${name} p50`, factory: fac[0]!, baseline: bare[0]!, unit: 'ms', notes: "parsed from the script's own output" },
    { name: `${name} p99`, factory: fac[1]!, baseline: bare[1]!, unit: 'ms', notes: "parsed from the script's own output" },
  ];
}

const errRow = (name: string, note: string): Row => ({ name, factory: NaN, baseline: NaN, unit: '-', notes: note });

async function main(): Promise<void> {
  const watchdog = setTimeout(() => {
    console.error(`bench: watchdog fired after ${WATCHDOG_MS} ms`);
    process.exit(2);
  }, WATCHDOG_MS);
  watchdog.unref();
  const t0 = nowMs();
  const rows: Row[] = [];
  const timings: string[] = [];
  let failed = 0;
  for (const name of BENCHMARKS) {
    const file = path.join(HERE, `${name}.ts`);
    if (!existsSync(file)) {
      log(`${name}: skipped: not present`);
      rows.push(errRow(name, 'skipped: not present'));
      continue;
    }
    const start = nowMs();
    try {
      let got: Row[];
      if (EXPORTS_RUN.test(readFileSync(file, 'utf8'))) {
        const mod = (await import(`./${name}.js`)) as { run?: () => Promise<Row[]> };
        if (typeof mod.run !== 'function') throw new Error('module exports no run()');
        got = await mod.run();
      } else {
        got = await runScript(name, file);
      }
      rows.push(...got);
      console.log(formatTable(got));
    } catch (err) {
      failed++;
      const msg = err instanceof Error ? err.message : String(err);
      console.error(`bench ${name} failed:`, err);
      rows.push(errRow(name, `ERROR: ${msg.split('\n')[0]!.slice(0, 200)}`));
    }
    timings.push(`${name} ${round((nowMs() - start) / 1000)} s`);
  }
  console.log(`\n## Factory benchmarks${QUICK ? ' (BENCH_QUICK=1)' : ''}\n`);
  console.log(`Machine: ${machine()}`);
  console.log(`Ratio = factory / baseline, both measured in this run; for throughputs higher is better.\n`);
  console.log(formatTable(rows));
  console.log(`\nTotal ${round((nowMs() - t0) / 1000)} s (${timings.join(', ')})`);
  process.exit(failed ? 1 : 0);
}

void main();
