// Memory under a flooding agent: the fake claude prints `mb` MiB of stream-json ([fake:flood]).
//
// Factory: the whole task runs in a child process of its own (so the parent's heap and the other
// benchmarks do not pollute the numbers); it samples process.memoryUsage().rss every 50 ms from just
// before POST /api/tasks until the task has finished, and reports peak − start. The agent's output
// goes through Factory's line splitter, stream parser, log writer and into SQLite (a temp data dir,
// removed afterwards).
//
// Baseline: a bare Node child process that spawns the same fake agent with the same argv and only
// drains its stdout (child.stdout.resume()). It pays for the pipe and the event loop and nothing else,
// which is the floor any supervisor that reads the output must pay. Same sampling. Throughput is
// mb / (agent spawn → exit) for both (Factory's from its own task_runs.duration_ms).
// Both children run under the same `node --import tsx` so their start-up footprint is alike; only the
// growth is compared. Each side first runs one 1 MiB agent of the same kind, unmeasured, so the
// growth is what streaming costs, not what a process's first task loads.
import { readFileSync } from 'node:fs';
import { isMain, log, nowMs, pick, removeTemp, round, runStandalone, sleep, spawnFake, startFactory, tempDir, type Row } from './lib.js';
import { childArgs, childMain, startChild } from './child-run.js';

const MB = pick(200, 50);
const FACTORY_CAP_MS = pick(45_000, 15_000);
const CHILD_TIMEOUT_MS = FACTORY_CAP_MS + 60_000;
const mib = (b: number) => b / (1024 * 1024);

interface Sample {
  startMb: number;
  peakMb: number;
  growthMb: number;
  agentMs: number;
  totalMs: number;
  hwmMb: number;
  extra: string;
  dnf?: boolean;
}

function sampler() {
  const start = process.memoryUsage().rss;
  let peak = start;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  return {
    stop(): { start: number; peak: number } {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage().rss);
      return { start, peak };
    },
  };
}

function hwmMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * Factory gets at most FACTORY_CAP_MS for the flood (bounded run time). If it has not finished by then
 * the task is cancelled and the row says so: throughput is then the output stored so far per second.
 */
/** The fake's scenario: `chunk`-sized lines, or (chunk 0) one line of `mb` MiB with no newline in it. */
const directive = (mb: number, chunk: number) => (chunk > 0 ? `[fake:flood mb=${mb} chunk=${chunk}]` : `[fake:long-line mb=${mb}]`);

async function childFactory(mb: number, chunk: number): Promise<Sample> {
  const f = await startFactory();
  try {
    // One small task of the same kind first: what the first task loads (lazily imported stages, git's
    // first clone, prepared statements) is a one-off cost of the process, not of streaming output.
    const warm = await f.createTask(`Warm up.\n${directive(1, chunk)}`, 'bench flood warm-up');
    await f.statusAt(warm, ['done', 'in_review', 'failed'], CHILD_TIMEOUT_MS);
    await sleep(200);
    const s = sampler();
    const t0 = nowMs();
    const id = await f.createTask(`Print a lot.\n${directive(mb, chunk)}`, 'bench flood');
    const end = await Promise.race([
      f.statusAt(id, ['done', 'in_review', 'failed'], CHILD_TIMEOUT_MS),
      sleep(FACTORY_CAP_MS).then(() => null),
    ]);
    const totalMs = nowMs() - t0;
    const { start, peak } = s.stop();
    const db = f.env.services.db;
    const stored = (await db.get(
      `SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(line)), 0) AS bytes FROM task_logs WHERE task_id = ? AND stream = 'stdout'`,
      id,
    )) as { n: number; bytes: number };
    const base = { startMb: mib(start), peakMb: mib(peak), growthMb: mib(peak - start), totalMs, hwmMb: hwmMb() };
    if (!end) {
      await f.env.services.running.cancel(id, 10_000);
      const runStart = Date.parse((await f.env.services.repos.runs.forTask(id)).at(-1)?.started_at ?? '') || Date.now() - totalMs;
      const agentMs = Date.now() - runStart;
      return {
        ...base,
        dnf: true,
        agentMs: (agentMs * (mb * 1024 * 1024)) / Math.max(1, stored.bytes),
        extra: `DID NOT FINISH within the ${FACTORY_CAP_MS / 1000} s cap (noticed after ${round(totalMs / 1000)} s: busy event loop), cancelled with ${round(mib(stored.bytes))} of ${mb} MiB stored (${stored.n} rows); throughput is the rate so far`,
      };
    }
    if (end.status === 'failed') throw new Error(`flood task failed: ${(await f.env.services.tasks.get(id))?.error}`);
    const runRow = (await f.env.services.repos.runs.forTask(id)).at(-1);
    return { ...base, agentMs: runRow?.duration_ms ?? totalMs, extra: `${stored.n} stdout rows stored` };
  } finally {
    await f.close();
  }
}

async function childBaseline(mb: number, chunk: number): Promise<Sample> {
  const dir = tempDir();
  try {
    const fake = (mbs: number) =>
      spawnFake(`Print a lot.\n${directive(mbs, chunk)}`, { cwd: dir, env: { FAKE_CLAUDE_STATE_DIR: `${dir}/state` } });
    await fake(1).done; // the same warm-up as Factory's
    await sleep(200);
    const s = sampler();
    const t0 = nowMs();
    const run = fake(mb);
    const code = await run.done;
    const agentMs = nowMs() - t0;
    const { start, peak } = s.stop();
    if (code !== 0) throw new Error(`fake agent exited ${code}`);
    return { startMb: mib(start), peakMb: mib(peak), growthMb: mib(peak - start), agentMs, totalMs: agentMs, hwmMb: hwmMb(), extra: '' };
  } finally {
    removeTemp(dir);
  }
}

/** Runs one side in a fresh `node --import tsx` process (its temp dirs live under a TMPDIR that is removed). */
async function measure(kind: 'factory' | 'baseline', mb: number, chunk: number): Promise<Sample> {
  const child = startChild(import.meta.url, [kind, String(mb), String(chunk)], { timeoutMs: CHILD_TIMEOUT_MS + 30_000 });
  try {
    return await child.result<Sample>();
  } finally {
    await child.stop();
  }
}

/**
 * Long lines (the brief's case), short lines (many more rows: the per-line path rather than per-byte
 * work), and one 50 MiB line (the reader must cap it as it arrives, not hold it).
 */
const VARIANTS = [
  { label: '16 KiB lines', mb: MB, chunk: 16 * 1024 },
  { label: '256 B lines', mb: pick(100, 20), chunk: 256 },
  { label: 'one 50 MiB line', mb: 50, chunk: 0 },
];

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const v of VARIANTS) {
    log(`flood-rss: ${v.mb} MiB of agent output in ${v.label}`);
    const base = await measure('baseline', v.mb, v.chunk);
    const fac = await measure('factory', v.mb, v.chunk);
    const mbps = (s: Sample) => v.mb / (s.agentMs / 1000);
    const tag = `${v.mb} MiB, ${v.label}${fac.dnf ? ', FACTORY DNF' : ''}`;
    rows.push(
      {
        name: `flood-rss (${tag})`,
        factory: fac.growthMb,
        baseline: base.growthMb,
        unit: 'MB RSS growth (peak − start)',
        target: `≤ +${Math.max(30, round(base.growthMb))} MB (30 MB, or the bare growth if higher)`,
        notes:
          `start ${round(fac.startMb)}/${round(base.startMb)} MB, peak ${round(fac.peakMb)}/${round(base.peakMb)} MB, ` +
          `VmHWM ${round(fac.hwmMb)}/${round(base.hwmMb)} MB (factory/baseline); ${fac.extra}`,
      },
      {
        name: `flood-throughput (${tag})`,
        factory: mbps(fac),
        baseline: mbps(base),
        unit: 'MiB/s agent spawn→exit',
        higherIsBetter: true,
        target: v.chunk === 16 * 1024 ? '≥ 0.7×' : '-',
        notes: fac.dnf
          ? `factory cut off at ${round(fac.totalMs / 1000, 1)} s`
          : `factory task create→finished ${round(fac.totalMs / 1000, 2)} s`,
      },
    );
  }
  return rows;
}

if (isMain(import.meta.url)) {
  const args = childArgs();
  if (args) {
    const [kind, mb, chunk] = [args[0], Number(args[1]), Number(args[2])];
    childMain(() => (kind === 'factory' ? childFactory(mb, chunk) : childBaseline(mb, chunk)));
  } else {
    runStandalone(run);
  }
}
