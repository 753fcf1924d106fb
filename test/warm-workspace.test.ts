// The clone cache is reused between tasks (one targeted fetch, the default branch remembered): each
// task must still start from what the remote has now, also after pushes and default-branch changes.
import { execFileSync } from 'node:child_process';
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentEnv, gitOut, localOrigin, localWorkspace, type AgentEnv } from './agent-harness.js';
import { tempDir } from './helpers.js';

describe('warm workspaces', () => {
  let env: AgentEnv;
  let origin: string;
  let work: string;
  const git = (cwd: string, ...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=Someone', '-c', 'user.email=someone@example.com', ...args], { cwd, encoding: 'utf8' }).trim();

  /** Someone else commits to `branch` on the origin; returns the new commit. */
  const pushElsewhere = (branch: string, file: string): string => {
    git(work, 'checkout', '--quiet', '-B', branch, `origin/${branch}`);
    writeFileSync(path.join(work, file), `${file}\n`);
    git(work, 'add', '.');
    git(work, 'commit', '--quiet', '-m', `change ${file}`);
    git(work, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
    git(work, 'fetch', '--quiet', 'origin');
    return git(work, 'rev-parse', 'HEAD');
  };

  /** Runs a task that commits a change; returns it with the commit its branch started from. */
  const runTask = async (title: string) => {
    const t = await env.createTask({ title, description: '[fake:success]' });
    const done = await env.waitStatus(t.id, ['in_review', 'failed']);
    expect(done.error).toBe('');
    expect(done.status).toBe('in_review');
    return { task: done, startedFrom: gitOut(origin, 'rev-parse', `${done.branch_name}~1`) };
  };

  beforeAll(async () => {
    env = await createAgentEnv({ overrides: { max_concurrent_agents: 1 } });
    origin = path.join(env.origins, 'acme', 'web.git');
    work = tempDir('factory-elsewhere-');
    git(work, 'clone', '--quiet', origin, '.');
  });
  afterAll(async () => {
    await env.stopAll();
  });

  it('starts every task from the remote default branch as it is now, after pushes between tasks', async () => {
    const first = await runTask('First task');
    expect(first.startedFrom).toBe(gitOut(origin, 'rev-parse', 'main'));

    const pushed = pushElsewhere('main', 'PUSHED.md');
    const second = await runTask('Second task');
    expect(second.task.base_branch).toBe('main');
    expect(second.startedFrom).toBe(pushed);
    // And once more: the cached tracking ref moves every time, not only the first.
    const again = pushElsewhere('main', 'AGAIN.md');
    expect((await runTask('Third task')).startedFrom).toBe(again);
  });

  it('starts from the base_branch a task asks for and opens its pull request against it', async () => {
    git(work, 'push', '--quiet', 'origin', 'origin/main:refs/heads/release');
    git(work, 'fetch', '--quiet', 'origin');
    const release = pushElsewhere('release', 'release-notes.md');
    const t = await env.createTask({ title: 'On the release branch', description: '[fake:success]', base_branch: 'release' });
    const done = await env.waitStatus(t.id, ['in_review', 'failed']);
    expect(done.error).toBe('');
    expect(done.base_branch).toBe('release');
    expect(gitOut(origin, 'rev-parse', `${done.branch_name}~1`)).toBe(release);
    const pr = env.github.requests.filter((r) => r.method === 'POST' && r.path === '/repos/acme/web/pulls').at(-1);
    expect(pr?.json).toMatchObject({ head: done.branch_name, base: 'release' });
  });

  it('follows the remote when its default branch changes to another commit', async () => {
    git(work, 'checkout', '--quiet', '-b', 'trunk', 'origin/main');
    writeFileSync(path.join(work, 'TRUNK.md'), 'trunk\n');
    git(work, 'add', '.');
    git(work, 'commit', '--quiet', '-m', 'trunk starts');
    git(work, 'push', '--quiet', 'origin', 'HEAD:refs/heads/trunk');
    git(origin, 'symbolic-ref', 'HEAD', 'refs/heads/trunk');
    const trunk = git(origin, 'rev-parse', 'trunk');

    const t = await runTask('On the new default');
    expect(t.task.base_branch).toBe('trunk');
    expect(t.startedFrom).toBe(trunk);
  });

  it('follows a rename of the default branch (same commit, the old name deleted)', async () => {
    const trunk = git(origin, 'rev-parse', 'trunk');
    git(origin, 'branch', '-m', 'trunk', 'develop');
    git(origin, 'symbolic-ref', 'HEAD', 'refs/heads/develop');

    const t = await runTask('After the rename');
    expect(t.task.base_branch).toBe('develop');
    expect(t.startedFrom).toBe(trunk);
  });
});

describe('the remembered default branch', () => {
  const workspace = (dir: string, ttlMs?: number) => localWorkspace(dir, { defaultBranchTtlMs: ttlMs });

  it('is asked again once its time to live has passed, also when the new default has the same commit', async () => {
    const { dir, bare, spec } = localOrigin('factory-ttl-');
    const remembering = workspace(path.join(dir, 'a'));
    const asking = workspace(path.join(dir, 'b'), 0);
    expect(await remembering.sync(spec)).toBe('main');
    expect(await asking.sync(spec)).toBe('main');
    // A new default at the same commit: the fetched HEAD cannot tell, only ls-remote can.
    execFileSync('git', ['branch', 'alt', 'main'], { cwd: bare });
    execFileSync('git', ['symbolic-ref', 'HEAD', 'refs/heads/alt'], { cwd: bare });
    expect(await remembering.sync(spec)).toBe('main');
    expect(await asking.sync(spec)).toBe('alt');
    expect(gitOut(asking.cachePath(spec), 'rev-parse', 'refs/remotes/origin/alt')).toBe(gitOut(bare, 'rev-parse', 'alt'));
  });

  it('prepares a worktree again after its directory was deleted without git knowing', async () => {
    const { dir, spec } = localOrigin('factory-stale-wt-');
    const ws = workspace(dir);
    await ws.sync(spec, { branch: 'factory/1-x' });
    const first = await ws.prepare(spec, 'task-1', 'factory/1-x', 'main');
    rmSync(first.path, { recursive: true, force: true });
    // Still registered in the cache, and the local branch is still there: prune, then -B resets it.
    expect(gitOut(ws.cachePath(spec), 'worktree', 'list', '--porcelain')).toContain(first.path);
    const again = await ws.prepare(spec, 'task-1', 'factory/1-x', 'main');
    expect(gitOut(again.path, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe('factory/1-x');
  });

  it('leaves no worktree nor branch behind when the fetch fails after the worktree was added', async () => {
    const { dir, bare, spec } = localOrigin('factory-warm-fail-');
    const ws = workspace(dir);
    await ws.syncAndPrepare(spec, 'task-1', 'factory/1-x');
    // The cache is warm (a fetched base to start from); now the origin is gone.
    renameSync(bare, `${bare}.gone`);
    await expect(ws.syncAndPrepare(spec, 'task-2', 'factory/2-y')).rejects.toThrow();
    expect(existsSync(ws.worktreePath('task-2'))).toBe(false);
    expect(gitOut(ws.cachePath(spec), 'worktree', 'list', '--porcelain')).not.toContain(ws.worktreePath('task-2'));
    expect(gitOut(ws.cachePath(spec), 'branch', '--list', 'factory/2-y')).toBe('');
    // Back again: the task's worktree is made from the fetched base.
    renameSync(`${bare}.gone`, bare);
    const { wt } = await ws.syncAndPrepare(spec, 'task-2', 'factory/2-y');
    expect(gitOut(wt.path, 'rev-parse', 'HEAD')).toBe(gitOut(bare, 'rev-parse', 'main'));
  });
});
