// One worktree per task over the shared clone cache (clone-cache.ts), commits, pushes and WIP checkpoints.
// The GitHub token reaches git only through per-command environment (GIT_CONFIG_* → http.extraHeader),
// only for fetch, push and ls-remote, and only in an authority directory Factory wrote for that one
// command (see authority.ts): never in the worktree or the clone cache, whose config the agent can edit.
// It is never written to a URL or to any git config file.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { SimpleGit } from 'simple-git';
import type { RepoSpec } from './repo-spec.js';
import { KeyedMutex } from './mutex.js';
import { GitCommands } from './commands.js';
import { CloneCache, type SyncWants } from './clone-cache.js';
import { GitError, lastLines } from './errors.js';
import { readWorktreeHead } from './ref-files.js';
import { scrub } from '../secrets.js';

export { GitError, GitUnreachableError, RepoNotFoundError } from './errors.js';
export type { SyncWants } from './clone-cache.js';

export interface WorkspaceOptions {
  reposDir: string;
  worktreesDir: string;
  githubToken: string;
  authorName: string;
  authorEmail: string;
  /** Environment git runs with (PATH, HOME…); secrets are added per command. */
  baseEnv: Record<string, string>;
  /** How long a learned default branch is used before `ls-remote` asks again (default 10 min). */
  defaultBranchTtlMs?: number;
}

export interface Worktree {
  path: string;
  branch: string;
  baseBranch: string;
}

/** Text for a branch name: lowercase words of the title, at most 40 characters. */
export function slugify(title: string): string {
  const slug = title
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return slug || 'task';
}

const ORIGIN_TRAILER = 'Factory-Checkpoint-Origin';

/** The hidden ref holding a running task's WIP checkpoint (not a branch: no PR or CI sees it). */
export const wipRef = (taskId: number) => `refs/factory/wip/${taskId}`;

export class Workspace {
  private readonly locks = new KeyedMutex();
  private readonly cmd: GitCommands;
  private readonly cache: CloneCache;

  constructor(private readonly opts: WorkspaceOptions) {
    mkdirSync(opts.reposDir, { recursive: true });
    mkdirSync(opts.worktreesDir, { recursive: true });
    this.cmd = new GitCommands({ ...opts, authorityRoot: path.join(opts.reposDir, '.authority') });
    this.cache = new CloneCache(this.cmd, opts.reposDir, opts.defaultBranchTtlMs ?? 10 * 60_000);
  }

  cachePath(spec: RepoSpec): string {
    return this.cache.path(spec);
  }

  /**
   * Brings what the task needs into the clone cache (see CloneCache.refresh) and returns the
   * remote's default branch. Under the repo lock, so concurrent tasks on one repo never race.
   */
  async sync(spec: RepoSpec, wants: SyncWants = {}): Promise<string> {
    return this.locks.run(spec.slug, () => this.cache.refresh(spec, wants));
  }

  /**
   * sync and prepare in one for a new branch (a task's first run), the worktree added from the base
   * as last fetched while the fetch runs: a warm start pays for the longer of the two, not both.
   * When the fetch moved the base (or the default branch changed), the new worktree is reset to
   * where the remote is now, so the branch still starts from the remote's current base. Without a
   * fetched base to start from (a new cache), it is sync then prepare.
   */
  async syncAndPrepare(spec: RepoSpec, key: string, branch: string, base?: string): Promise<{ defaultBranch: string; wt: Worktree }> {
    const wt = this.worktreePath(key);
    const guess = base ?? this.cache.knownDefault(spec);
    const guessedStart = guess && this.cache.lastFetched(spec, `refs/remotes/origin/${guess}`);
    if (!guessedStart || existsSync(path.join(wt, '.git'))) {
      const defaultBranch = await this.sync(spec, { base, branch });
      return { defaultBranch, wt: await this.prepare(spec, key, branch, base ?? defaultBranch) };
    }
    return this.locks.run(spec.slug, async () => {
      await rm(wt, { recursive: true, force: true });
      const adding = this.addWorktree(spec, key, branch, guessedStart).then(
        () => true,
        () => false,
      );
      let defaultBranch: string;
      try {
        defaultBranch = await this.cache.refresh(spec, { base, branch });
      } catch (err) {
        await adding;
        await this.removeLocked(spec, wt, branch).catch(() => undefined);
        throw err;
      }
      const baseBranch = base ?? defaultBranch;
      const start = await this.startPoint(spec, this.git(this.cachePath(spec)), branch, baseBranch);
      if (!(await adding)) {
        await this.addWorktree(spec, key, branch, start);
      } else if (start !== guessedStart) {
        await this.run(`moving ${key} to the fetched base`, () => this.cmd.silent(wt, ['reset', '--hard', '--quiet', start]));
      }
      return { defaultBranch, wt: { path: wt, branch, baseBranch } };
    });
  }

  /** Worktrees are keyed by task (`task-12`) or shared by a workflow's steps (`workflow-3`). */
  worktreePath(key: string): string {
    return path.join(this.opts.worktreesDir, key);
  }

  private git(dir: string | undefined, extraEnv: Record<string, string> = {}): SimpleGit {
    return this.cmd.local(dir, extraEnv);
  }

  private run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return this.cmd.run(what, fn);
  }

  /**
   * Creates (or reuses) the task's worktree. A new branch starts from the base as last fetched (see
   * sync); an existing remote branch (revision, resume on another host) is checked out as it is.
   */
  async prepare(spec: RepoSpec, key: string, branch: string, baseBranch: string, startAt?: string): Promise<Worktree> {
    const wt = this.worktreePath(key);
    if (existsSync(path.join(wt, '.git'))) return { path: wt, branch, baseBranch };
    return this.locks.run(spec.slug, async () => {
      const g = this.git(this.cachePath(spec));
      rmSync(wt, { recursive: true, force: true });
      // startAt: a WIP checkpoint of the task, when another worker is taking it over. Otherwise the
      // task's remote branch if it has one, else its base: commits as the last fetch saw them.
      const start = startAt ?? (await this.startPoint(spec, g, branch, baseBranch));
      await this.addWorktree(spec, key, branch, start);
      return { path: wt, branch, baseBranch };
    });
  }

  /** `worktree add -B` (a local branch left by an earlier run is reset to `start`); call under the lock. */
  private async addWorktree(spec: RepoSpec, key: string, branch: string, start: string): Promise<void> {
    const g = this.git(this.cachePath(spec));
    const wt = this.worktreePath(key);
    const add = () => g.raw(['worktree', 'add', '-B', branch, wt, start]);
    await add().catch(async () => {
      // Most often a worktree deleted without git knowing (still registered): prune, then once more.
      await this.run('pruning worktrees', () => g.raw(['worktree', 'prune']));
      rmSync(wt, { recursive: true, force: true });
      await this.run(`creating worktree ${key}`, add);
    });
  }

  /** The commit a task's worktree starts from: its remote branch when there is one, else its base. */
  private async startPoint(spec: RepoSpec, g: SimpleGit, branch: string, baseBranch: string): Promise<string> {
    const own = `refs/remotes/origin/${branch}`;
    const base = `refs/remotes/origin/${baseBranch}`;
    const sha = this.cache.lastFetched(spec, own) ?? this.cache.lastFetched(spec, base);
    if (sha) return sha;
    // No fetch of this repo in this process yet: ask git. The base is among the
    // patterns so the answer is never empty (see GitCommands on simple-git's wait).
    const refs = await g.raw(['for-each-ref', '--format=%(refname)', own, base]);
    return refs.split('\n').includes(own) ? own : base;
  }

  /**
   * Pushes the worktree's current state (committed or not) to the hidden ref
   * `refs/factory/wip/<taskId>`, without touching the worktree's HEAD, index or files: the agent may
   * be working in it right now. Another worker that takes the task over starts from there.
   * Returns the pushed commit, or undefined when nothing changed since `lastTree`.
   */
  async pushCheckpoint(
    spec: RepoSpec,
    wt: string,
    taskId: number,
    lastTree?: string,
  ): Promise<{ commit: string; tree: string } | undefined> {
    const index = path.join(tmpdir(), `factory-wip-${taskId}-${randomBytes(4).toString('hex')}.idx`);
    try {
      const g = this.git(wt, { GIT_INDEX_FILE: index });
      await this.run('checkpoint: reading HEAD', () => g.raw(['read-tree', 'HEAD']));
      await this.run('checkpoint: staging', () => g.raw(['add', '-A']));
      const tree = (await this.run('checkpoint: writing tree', () => g.raw(['write-tree']))).trim();
      if (tree === lastTree) return undefined;
      const commit = (
        await this.run('checkpoint: committing', () =>
          g.raw([
            'commit-tree',
            tree,
            '-p',
            'HEAD',
            '-m',
            `WIP: checkpoint of task ${taskId} while the agent works\n\n${ORIGIN_TRAILER}: ${this.checkpointOrigin(wt)}`,
          ]),
        )
      ).trim();
      await this.run('checkpoint: pushing', () => this.cache.push(spec, ['--force'], [`${commit}:${wipRef(taskId)}`]));
      return { commit, tree };
    } finally {
      rmSync(index, { force: true });
    }
  }

  /** Which worktree on which host a checkpoint was taken from (recorded in the checkpoint commit). */
  checkpointOrigin(wt: string): string {
    return `${hostname()}:${path.resolve(wt)}`;
  }

  /**
   * Fetches the task's WIP checkpoint into the clone cache: its commit and the worktree it was taken
   * from, or undefined when there is none.
   */
  async fetchCheckpoint(spec: RepoSpec, taskId: number): Promise<{ commit: string; origin: string } | undefined> {
    return this.locks.run(spec.slug, async () => {
      const g = this.git(this.cachePath(spec));
      try {
        await this.cache.fetch(spec, [`+${wipRef(taskId)}:${wipRef(taskId)}`], false);
      } catch {
        return undefined; // no checkpoint was pushed
      }
      const commit = (await g.raw(['rev-parse', '--verify', `${wipRef(taskId)}^{commit}`])).trim();
      if (!commit) return undefined;
      const body = await g.raw(['log', '-1', '--format=%B', commit]);
      const origin = new RegExp(`^${ORIGIN_TRAILER}: (.+)$`, 'm').exec(body)?.[1]?.trim() ?? '';
      return { commit, origin };
    });
  }

  /** Whether the remote branch (as last fetched) already contains `commit`; false when there is no such branch. */
  async branchContains(spec: RepoSpec, branch: string, commit: string): Promise<boolean> {
    const g = this.git(this.cachePath(spec));
    try {
      await g.raw(['merge-base', '--is-ancestor', commit, `refs/remotes/origin/${branch}`]);
      return true;
    } catch {
      return false;
    }
  }

  /** Deletes the task's WIP checkpoint on the remote and in the cache (the task ended). Never throws. */
  async dropCheckpoint(spec: RepoSpec, taskId: number): Promise<void> {
    await this.locks.run(spec.slug, async () => {
      const has = (await this.cache.lsRemote(spec, wipRef(taskId)).catch(() => '')).trim();
      if (has) await this.cache.push(spec, ['--delete'], [wipRef(taskId)]).catch(() => undefined);
      await this.cmd.silent(this.cachePath(spec), ['update-ref', '-d', wipRef(taskId)]).catch(() => undefined);
    });
  }

  /** Commits everything the agent left uncommitted. Returns true when a commit was made. */
  async commitAll(wt: string, message: string): Promise<boolean> {
    await this.run('staging changes', () => this.cmd.silent(wt, ['add', '-A']));
    // No `status` first (one process fewer): with nothing staged, commit says so and exits 1.
    const r = await this.cmd.attempt(wt, ['commit', '--no-verify', '-m', scrub(message)], { LC_ALL: 'C' });
    if (r.exitCode === 0) return true;
    if (r.exitCode === 1 && /^nothing (added )?to commit/m.test(r.stdout)) return false;
    throw new GitError(`committing: ${lastLines(r.stderr || r.stdout)}`);
  }

  /** Number of commits on HEAD that the base branch does not have. */
  async commitsAhead(wt: string, baseBranch: string): Promise<number> {
    const out = await this.run('counting commits', () => this.git(wt).raw(['rev-list', '--count', `origin/${baseBranch}..HEAD`]));
    return Number(out.trim()) || 0;
  }

  async changedFiles(wt: string, baseBranch: string): Promise<string[]> {
    const out = await this.run('listing changes', () => this.git(wt).raw(['diff', '--name-only', `origin/${baseBranch}...HEAD`]));
    return out.split('\n').filter(Boolean);
  }

  async headSha(wt: string): Promise<string> {
    return (await this.git(wt).raw(['rev-parse', 'HEAD'])).trim();
  }

  /** Pushes the worktree's HEAD commit to the task branch at the repository's resolved URL (never to the default branch). */
  async push(spec: RepoSpec, wt: string, branch: string, baseBranch: string): Promise<void> {
    if (branch === baseBranch) throw new GitError(`refusing to push to the default branch ${baseBranch}`);
    // From the worktree's files when they say it plainly: one git process fewer on every push.
    const head = (await readWorktreeHead(wt)) ?? (await this.run('reading HEAD', () => this.headSha(wt)));
    await this.run(`pushing ${branch}`, () => this.cache.push(spec, [], [`${head}:refs/heads/${branch}`]));
  }

  /** Deletes a merged task branch on the remote (never the default branch). */
  async deleteRemoteBranch(spec: RepoSpec, branch: string, baseBranch: string): Promise<void> {
    if (!branch || branch === baseBranch) return;
    await this.locks.run(spec.slug, () =>
      this.run(`deleting ${branch}`, () => this.cache.push(spec, ['--delete'], [`refs/heads/${branch}`])),
    );
  }

  /** Removes the worktree and its local branch ref; the pushed branch stays on the remote. */
  /**
   * Removes a worktree, its registration in the cache and its local branch. Each step is tried even
   * when an earlier one failed; what is left afterwards (a registration, the branch) is an error
   * naming git's reasons, so a leaking worktree shows up in the log instead of piling up unseen.
   */
  async remove(spec: RepoSpec, key: string, branch?: string): Promise<void> {
    await this.locks.run(spec.slug, () => this.removeLocked(spec, this.worktreePath(key), branch));
  }

  /** remove() for a caller that holds the repo lock. */
  private async removeLocked(spec: RepoSpec, wt: string, branch?: string): Promise<void> {
    const cache = this.cachePath(spec);
    const reasons: string[] = [];
    const attempt = (p: Promise<unknown>) =>
      p.catch((err: Error) => {
        reasons.push(err.message.trim().split('\n')[0]!);
      });
    const hasCache = existsSync(cache);
    const git = (args: string[]) => this.cmd.silent(cache, args);
    if (hasCache) {
      await attempt(git(['worktree', 'remove', '--force', wt]));
      // Most often a worktree deleted without git knowing (still registered): prune forgets it.
      if (reasons.length) await attempt(git(['worktree', 'prune']));
    }
    await rm(wt, { recursive: true, force: true });
    if (!hasCache) return;
    if (branch) await attempt(git(['branch', '-D', branch]));
    // Every step said it succeeded: nothing is left to look for.
    if (!reasons.length) return;
    const registered = (await git(['worktree', 'list', '--porcelain'])).split('\n').includes(`worktree ${wt}`);
    const branchLeft = branch ? (await git(['branch', '--list', branch])).trim() !== '' : false;
    if (registered || branchLeft) {
      const left = [registered ? `worktree ${wt} is still registered` : '', branchLeft ? `branch ${branch} still exists` : ''].filter(
        Boolean,
      );
      throw new Error(`could not remove the worktree completely: ${left.join(', ')} (${reasons.join('; ') || 'no error from git'})`);
    }
  }
}
