// One whole task: from POST /api/tasks?auto_run=true to `in_review` with a pull request opened on the
// fake GitHub (the end is taken from Factory's in-process `task.status` event, no polling error).
//
// Baseline: a plain script doing the same externally visible work in the same order: refresh the
// clone (git fetch), `git worktree add -b`, run the same fake agent ([fake:success], it edits a file)
// to completion while keeping its output, `git add -A` + `git commit`, `git push` to the same kind of
// local bare origin, one POST /repos/:o/:r/pulls to the same fake GitHub, and removing the worktree
// (Factory removes it before it reports in_review, so that is inside its span too). Anything Factory
// does on top — queueing, ls-remote, extra git checks, SQLite logs/runs/events, prompt building,
// stream parsing — is the overhead this ratio shows. Runs alternate; one warm-up each.
import path from 'node:path';
import {
  GITHUB_TOKEN,
  bareClone,
  git,
  isMain,
  log,
  median,
  nowMs,
  percentile,
  pick,
  removeTemp,
  round,
  runStandalone,
  spawnFake,
  startFactory,
  tempDir,
  type BenchFactory,
  type Row,
} from './lib.js';

const N = pick(8, 3);
const PROMPT = 'Add a line to FAKE_CHANGE.md.\n[fake:success]';

async function factoryOnce(f: BenchFactory, i: number): Promise<number> {
  const t0 = nowMs();
  const id = await f.createTask(PROMPT, `bench full ${i}`);
  const end = await f.statusAt(id, ['in_review', 'done', 'failed'], 60_000);
  if (end.status !== 'in_review') throw new Error(`task ${id} ended ${end.status}: ${(await f.env.services.tasks.get(id))?.error}`);
  const pr = (await f.env.services.tasks.get(id))?.pr_number;
  if (!pr || !f.github.pulls.has(pr)) throw new Error(`task ${id} reached in_review without a PR on the fake GitHub`);
  return end.at - t0;
}

interface Baseline {
  cache: string;
  dir: string;
  apiUrl: string;
}

async function baselineOnce(b: Baseline, i: number): Promise<number> {
  const wt = path.join(b.dir, `wt-${i}`);
  const branch = `plain/${i}`;
  const t0 = nowMs();
  await git(b.cache, 'fetch', '--quiet', '--prune', 'origin', '+refs/heads/*:refs/remotes/origin/*');
  await git(b.cache, 'worktree', 'add', '--quiet', '-b', branch, wt, 'origin/main');
  const agent = spawnFake(PROMPT, { cwd: wt, keep: true, env: { FAKE_CLAUDE_STATE_DIR: path.join(b.dir, 'state') } });
  const code = await agent.done;
  if (code !== 0 || !agent.stdout().includes('"type":"result"')) throw new Error(`fake agent failed (exit ${code})`);
  await git(wt, 'add', '-A');
  await git(wt, 'commit', '--quiet', '--no-verify', '-m', `plain task ${i}`);
  await git(wt, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
  const res = await fetch(`${b.apiUrl}/repos/acme/web/pulls`, {
    method: 'POST',
    headers: { authorization: `Bearer ${GITHUB_TOKEN}`, 'content-type': 'application/json', accept: 'application/vnd.github+json' },
    body: JSON.stringify({ title: `plain task ${i}`, head: branch, base: 'main', body: 'baseline' }),
  });
  if (res.status !== 201) throw new Error(`baseline PR: HTTP ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  await git(b.cache, 'worktree', 'remove', '--force', wt);
  await git(b.cache, 'branch', '-D', branch);
  return nowMs() - t0;
}

export async function run(): Promise<Row[]> {
  log(`full-task: ${N} runs each`);
  const f = await startFactory();
  const dir = tempDir();
  try {
    const b: Baseline = { cache: path.join(dir, 'cache.git'), dir, apiUrl: f.github.url };
    // The baseline pushes to the same origin as Factory: both see the same growing set of branches.
    await bareClone(path.join(f.origins, 'acme', 'web.git'), b.cache);
    await factoryOnce(f, 0);
    await baselineOnce(b, 0);
    const fac: number[] = [];
    const base: number[] = [];
    for (let i = 1; i <= N; i++) {
      fac.push(await factoryOnce(f, i));
      base.push(await baselineOnce(b, i));
    }
    return [
      {
        name: 'full-task (create → in_review + PR)',
        factory: median(fac),
        baseline: median(base),
        unit: 'ms, median',
        target: '≤ 1.3× (resolved at ≤ 1.6×)',
        notes: `N=${N}; factory p90 ${round(percentile(fac, 90))}, baseline p90 ${round(percentile(base, 90))}; overhead ${round(median(fac) - median(base))} ms`,
      },
    ];
  } finally {
    await f.close();
    removeTemp(dir);
  }
}

if (isMain(import.meta.url)) runStandalone(run);
