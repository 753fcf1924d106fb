// Many agents at once: AGENTS fake claudes flood stream-json ([fake:flood]) through one Factory with
// max_concurrent_agents = AGENTS, all started together.
//
// CPU: Factory runs in a child process of its own and reports process.cpuUsage() (user + system of
// that process only; the agents and git are other processes) from just before the tasks are created
// until all of them have finished, per MiB of agent output. That window also holds each task's fixed
// cost (worktree, commit, push, PR: git runs in child processes, but spawning them is Factory's CPU).
// Baseline: a bare Node child that spawns the same fakes with the same argv at once and only drains
// their stdout: the floor for any supervisor that reads the output. That Factory run gets no API
// traffic, so the API's own cost is not in its CPU number.
//
// API latency: a second Factory child, probed from this (parent) process so the client is not
// starved by the event loop it measures: one keep-alive connection, one request every PROBE_EVERY_MS,
// alternating GET /api/tasks and GET /api/tasks/:id/logs?since=<cursor> (a dashboard following the
// agents). Baseline: the same probe against the same Factory right after the agents have finished
// (idle, same database contents). Both after a short warm-up so route JIT is not in either.
// Note the probe is fixed-rate without catch-up: a stall costs one slow sample, not one per 20 ms.
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { childArgs, childMain, fromParent, parentHungUp, startChild, tellParent } from './child-run.js';
import {
  isMain,
  log,
  nowMs,
  percentile,
  pick,
  removeTemp,
  round,
  runStandalone,
  sleep,
  spawnFake,
  startFactory,
  timedGet,
  tempDir,
  type Row,
} from './lib.js';

const AGENTS = 8;
const MB_PER_AGENT = pick(16, 4);
const CHUNK = 1024;
const TOTAL_MIB = AGENTS * MB_PER_AGENT;
const FLOOD_TIMEOUT_MS = pick(80_000, 40_000);
const CHILD_TIMEOUT_MS = FLOOD_TIMEOUT_MS + 60_000;
const PROBE_EVERY_MS = 20;
const WARMUP_MS = pick(1500, 500);
const IDLE_MS = pick(5000, 2000);

const prompt = (i: number) => `Agent ${i}: print a lot.\n[fake:flood mb=${MB_PER_AGENT} chunk=${CHUNK}]`;

interface CpuSample {
  cpuMs: number;
  userMs: number;
  systemMs: number;
  wallMs: number;
  /** Factory only: stdout log rows and their bytes in the database. */
  rows?: number;
  storedMib?: number;
  /** Factory only: its event loop's delay (p99, max) over the flood: a blocked loop, not CPU contention. */
  loopP99Ms?: number;
  loopMaxMs?: number;
}

function cpuSince(cpu0: NodeJS.CpuUsage, t0: number): CpuSample {
  const { user, system } = process.cpuUsage(cpu0);
  return { cpuMs: (user + system) / 1000, userMs: user / 1000, systemMs: system / 1000, wallMs: nowMs() - t0 };
}

// ---------------------------------------------------------------- the children

/** Child: READY <url>, waits for GO, creates the tasks, STARTED <ids>, FLOODED <CpuSample>, then serves until stdin ends. */
async function childFactory(): Promise<void> {
  const f = await startFactory({ overrides: { max_concurrent_agents: AGENTS } });
  try {
    tellParent('READY', await f.env.app.listen({ host: '127.0.0.1', port: 0 }));
    await fromParent('GO');
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const cpu0 = process.cpuUsage();
    const t0 = nowMs();
    const ids = await Promise.all(Array.from({ length: AGENTS }, (_, i) => f.createTask(prompt(i), `flood agent ${i}`)));
    tellParent('STARTED', JSON.stringify(ids));
    const ends = await Promise.all(ids.map((id) => f.statusAt(id, ['done', 'in_review', 'failed'], FLOOD_TIMEOUT_MS)));
    const sample = { ...cpuSince(cpu0, t0), loopP99Ms: loop.percentile(99) / 1e6, loopMaxMs: loop.max / 1e6 };
    loop.disable();
    const failed = ids.filter((_, i) => ends[i]!.status === 'failed');
    if (failed.length) throw new Error(`flood tasks failed: ${failed.join(', ')}`);
    const stored = (await f.env.services.db.get(
      `SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(line)), 0) AS bytes FROM task_logs WHERE stream = 'stdout'`,
    )) as { n: number; bytes: number };
    tellParent('FLOODED', JSON.stringify({ ...sample, rows: stored.n, storedMib: stored.bytes / 2 ** 20 }));
    await parentHungUp();
  } finally {
    await f.close();
  }
}

async function childBaseline(): Promise<CpuSample> {
  const dir = tempDir();
  try {
    const cpu0 = process.cpuUsage();
    const t0 = nowMs();
    const runs = Array.from({ length: AGENTS }, (_, i) =>
      spawnFake(prompt(i), { cwd: dir, env: { FAKE_CLAUDE_STATE_DIR: `${dir}/state` } }),
    );
    const codes = await Promise.all(runs.map((r) => r.done));
    const sample = cpuSince(cpu0, t0);
    if (codes.some((c) => c !== 0)) throw new Error(`fake agents exited ${codes.join(', ')}`);
    return sample;
  } finally {
    removeTemp(dir);
  }
}

// ---------------------------------------------------------------- the API probe (parent side)

interface Latency {
  kind: 'list' | 'logs';
  ms: number;
}

/** A dashboard-like client: the task list, and each task's new log lines in turn (cursor per task). */
function apiProbe(base: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const cursors = new Map<number, number | null>();
  let turn = 0;
  async function once(): Promise<Latency> {
    const ids = [...cursors.keys()];
    const id = ids[Math.floor(turn / 2) % Math.max(1, ids.length)];
    if (turn++ % 2 === 0 || id === undefined) return { kind: 'list', ms: (await timedGet(agent, `${base}/api/tasks`)).ms };
    const since = cursors.get(id);
    const res = await timedGet(agent, `${base}/api/tasks/${id}/logs?limit=100${since == null ? '' : `&since=${since}`}`);
    cursors.set(id, (JSON.parse(res.body) as { next_since: number | null }).next_since);
    return { kind: 'logs', ms: res.ms };
  }
  return {
    follow(ids: number[]) {
      for (const id of ids) cursors.set(id, null);
    },
    /** One request every PROBE_EVERY_MS (sequential: a slow answer delays the next) until `done()`. */
    async until(done: () => boolean): Promise<Latency[]> {
      const out: Latency[] = [];
      while (!done()) {
        const next = nowMs() + PROBE_EVERY_MS;
        out.push(await once());
        await sleep(Math.max(0, next - nowMs()));
      }
      return out;
    },
    close: () => agent.destroy(),
  };
}

const forMs = (ms: number) => {
  const end = nowMs() + ms;
  return () => nowMs() >= end;
};

// ---------------------------------------------------------------- parent: the runs

interface FactoryRun {
  flood: CpuSample;
  busy: Latency[];
  idle: Latency[];
}

/** One Factory child through the flood; with `probe`, the API is measured during it and idle afterwards. */
async function factoryRun(probe: boolean): Promise<FactoryRun> {
  const child = startChild(import.meta.url, ['factory'], { timeoutMs: CHILD_TIMEOUT_MS });
  let api: ReturnType<typeof apiProbe> | undefined;
  try {
    api = apiProbe(await child.line('READY'));
    if (probe) await api.until(forMs(WARMUP_MS));
    child.send('GO');
    const ids = JSON.parse(await child.line('STARTED')) as number[];
    api.follow(ids);
    let finished = false;
    const flooded = child.line('FLOODED').finally(() => (finished = true));
    const busy = probe ? await api.until(() => finished) : [];
    const flood = JSON.parse(await flooded) as CpuSample;
    const idle = probe ? await api.until(forMs(IDLE_MS)) : [];
    return { flood, busy, idle };
  } finally {
    api?.close();
    await child.stop();
  }
}

async function baselineRun(): Promise<CpuSample> {
  const child = startChild(import.meta.url, ['baseline'], { timeoutMs: CHILD_TIMEOUT_MS });
  try {
    return await child.result<CpuSample>();
  } finally {
    await child.stop();
  }
}

// ---------------------------------------------------------------- rows

const perMib = (s: CpuSample) => s.cpuMs / TOTAL_MIB;
const p = (xs: Latency[], q: number, kind?: Latency['kind']) =>
  percentile(kind ? xs.filter((x) => x.kind === kind).map((x) => x.ms) : xs.map((x) => x.ms), q);
const secs = (ms: number) => `${round(ms / 1000, 1)} s`;

function cpuRow(quiet: CpuSample, probed: CpuSample, bare: CpuSample): Row {
  return {
    name: `many-agents CPU (${AGENTS} agents × ${MB_PER_AGENT} MiB, ${CHUNK} B lines)`,
    factory: perMib(quiet),
    baseline: perMib(bare),
    unit: 'ms CPU per MiB',
    target: '- (no goal; lower is better)',
    notes:
      `${TOTAL_MIB} MiB in total; factory ${round(quiet.cpuMs)} ms CPU (user ${round(quiet.userMs)}, sys ${round(quiet.systemMs)}) ` +
      `in ${secs(quiet.wallMs)} create→all finished (incl. task setup/finish), ${quiet.rows} stdout rows (${round(quiet.storedMib ?? NaN)} MiB) stored; ` +
      `bare ${round(bare.cpuMs)} ms (user ${round(bare.userMs)}, sys ${round(bare.systemMs)}) in ${secs(bare.wallMs)}; ` +
      `factory while probed by the API client: ${round(perMib(probed), 2)} ms/MiB in ${secs(probed.wallMs)}`,
  };
}

function latencyRow(r: FactoryRun): Row {
  return {
    name: `many-agents API p99 (GET /api/tasks + /logs, ${AGENTS} agents flooding vs idle)`,
    factory: p(r.busy, 99),
    baseline: p(r.idle, 99),
    unit: 'ms',
    target: '≤ 50 ms',
    notes:
      `p50 ${round(p(r.busy, 50), 2)}/${round(p(r.idle, 50), 2)} ms, max ${round(p(r.busy, 100))}/${round(p(r.idle, 100))} ms (flooding/idle); ` +
      `p99 list ${round(p(r.busy, 99, 'list'))}, logs ${round(p(r.busy, 99, 'logs'))} ms while flooding; ` +
      `Factory's event-loop delay p99 ${round(r.flood.loopP99Ms ?? NaN)}, max ${round(r.flood.loopMaxMs ?? NaN)} ms; ` +
      `${r.busy.length}/${r.idle.length} requests, one per ${PROBE_EVERY_MS} ms at most, over ${secs(r.flood.wallMs)}/${secs(IDLE_MS)}`,
  };
}

export async function run(): Promise<Row[]> {
  log(`many-agents: ${AGENTS} agents × ${MB_PER_AGENT} MiB in ${CHUNK} B lines`);
  const bare = await baselineRun();
  const quiet = await factoryRun(false);
  log(`many-agents: CPU done (${secs(quiet.flood.wallMs)}); again with the API probe`);
  const probed = await factoryRun(true);
  return [cpuRow(quiet.flood, probed.flood, bare), latencyRow(probed)];
}

if (isMain(import.meta.url)) {
  const args = childArgs();
  if (args) childMain(args[0] === 'factory' ? childFactory : childBaseline);
  else runStandalone(run);
}
