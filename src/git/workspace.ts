// Clone cache (one bare clone per repo), one worktree per task, commits and pushes.
// The GitHub token reaches git only through per-command environment (GIT_CONFIG_* → http.extraHeader),
// only for fetch, push and ls-remote, and only in an authority directory Factory wrote for that one
// command (see authority.ts): never in the worktree or the clone cache, whose config the agent can edit.
// It is never written to a URL or to any git config file.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { simpleGit, type SimpleGit } from 'simple-git';
import type { RepoSpec } from './repo-spec.js';
import { KeyedMutex } from './mutex.js';
import { configEnv, createAuthorityDir, SAFE_COMMAND_CONFIG } from './authority.js';
import { GitError, GitUnreachableError, RepoNotFoundError, remoteFailure } from './errors.js';
import { scrub } from '../secrets.js';

export { GitError, GitUnreachableError, RepoNotFoundError } from './errors.js';

export interface WorkspaceOptions {
  reposDir: string;
  worktreesDir: string;
  githubToken: string;
  authorName: string;
  authorEmail: string;
  /** Environment git runs with (PATH, HOME…); secrets are added per command. */
  baseEnv: Record<string, string>;
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

  constructor(private readonly opts: WorkspaceOptions) {
    mkdirSync(opts.reposDir, { recursive: true });
    mkdirSync(opts.worktreesDir, { recursive: true });
  }

  cachePath(spec: RepoSpec): string {
    return path.join(this.opts.reposDir, spec.owner, `${spec.name}.git`);
  }

  /** Worktrees are keyed by task (`task-12`) or shared by a workflow's steps (`workflow-3`). */
  worktreePath(key: string): string {
    return path.join(this.opts.worktreesDir, key);
  }

  /** Environment of commands in the worktree or cache: no token, hooks and fsmonitor off. */
  private env(): Record<string, string> {
    return {
      ...this.opts.baseEnv,
      GIT_TERMINAL_PROMPT: '0',
      GIT_AUTHOR_NAME: this.opts.authorName,
      GIT_AUTHOR_EMAIL: this.opts.authorEmail,
      GIT_COMMITTER_NAME: this.opts.authorName,
      GIT_COMMITTER_EMAIL: this.opts.authorEmail,
      ...configEnv(SAFE_COMMAND_CONFIG),
    };
  }

  /** Environment of an authenticated command in an authority directory over the cache's objects. */
  private authEnv(gitDir: string, objectsDir: string | undefined): Record<string, string> {
    const entries = [...SAFE_COMMAND_CONFIG];
    if (this.opts.githubToken) {
      const basic = Buffer.from(`x-access-token:${this.opts.githubToken}`).toString('base64');
      entries.push(['http.extraHeader', `Authorization: Basic ${basic}`]);
    }
    return {
      ...this.opts.baseEnv,
      GIT_TERMINAL_PROMPT: '0',
      GIT_DIR: gitDir,
      ...(objectsDir ? { GIT_OBJECT_DIRECTORY: objectsDir } : {}),
      // ~/.gitconfig is as writable to an unsandboxed agent as the worktree; system config is root's.
      GIT_CONFIG_GLOBAL: '/dev/null',
      ...configEnv(entries),
    };
  }

  /**
   * Runs `fn` with a git bound to a fresh authority directory (see authority.ts) that reads and
   * writes the objects of `cache` (when given) and starts with `refs`. Removed afterwards.
   */
  private async authority<T>(cache: string | undefined, refs: string, fn: (g: SimpleGit, gitDir: string) => Promise<T>): Promise<T> {
    const objects = cache && path.join(cache, 'objects');
    const dir = createAuthorityDir(path.join(this.opts.reposDir, '.authority'), refs, objects);
    try {
      return await fn(this.spawnGit(dir.gitDir, this.authEnv(dir.gitDir, objects)), dir.gitDir);
    } finally {
      dir.remove();
    }
  }

  // Commands here are deliberately not --quiet: simple-git waits a fixed 50 ms after any command that
  // prints nothing, so progress output on stderr saves that wait on every clone, fetch, commit and push.
  private git(dir: string | undefined, extraEnv: Record<string, string> = {}): SimpleGit {
    return this.spawnGit(dir, { ...this.env(), ...extraEnv });
  }

  private spawnGit(dir: string | undefined, env: Record<string, string>): SimpleGit {
    // simple-git guards GIT_* variables; these are ours, set on purpose.
    const g = simpleGit({
      baseDir: dir,
      unsafe: { allowUnsafeConfigEnvCount: true, allowUnsafeConfigPaths: true, allowUnsafeHooksPath: true, allowUnsafeFsMonitor: true },
      allowEnvironment: Object.keys(env).filter((k) => k.startsWith('GIT_')),
      timeout: { block: 300_000 },
    });
    return g.env(env);
  }

  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new GitError(
        `${what}: ${scrub((err as Error).message)
          .trim()
          .split('\n')
          .slice(-5)
          .join(' | ')}`,
      );
    }
  }

  /** Checks that a remote repository exists and is readable; returns its default branch. */
  async remoteDefaultBranch(url: string): Promise<string> {
    let out: string;
    try {
      out = await this.authority(undefined, '', (g) => g.raw(['ls-remote', '--symref', url, 'HEAD']));
    } catch (err) {
      throw remoteFailure(url, (err as Error).message);
    }
    const m = /^ref: refs\/heads\/(\S+)\s+HEAD/m.exec(out);
    if (!m) throw new RepoNotFoundError(`repository ${scrub(url)} has no default branch (is it empty?)`);
    return m[1]!;
  }

  /**
   * Makes sure the clone cache exists and is fresh. Clone and fetch run under a per-repo lock so
   * concurrent tasks on one repo never race. Returns the default branch.
   */
  async sync(spec: RepoSpec): Promise<string> {
    return this.locks.run(spec.slug, async () => {
      const cache = this.cachePath(spec);
      const defaultBranch = spec.defaultBranch ?? (await this.remoteDefaultBranch(spec.cloneUrl));
      if (!existsSync(path.join(cache, 'HEAD'))) {
        rmSync(cache, { recursive: true, force: true });
        mkdirSync(path.dirname(cache), { recursive: true });
        await this.run(`creating the clone cache of ${spec.slug}`, () => this.git(undefined).raw(['init', '--bare', cache]));
        // For the agent's `git remote -v` and the like only: Factory never reads it (it pushes to spec.cloneUrl).
        await this.git(cache).raw(['config', 'remote.origin.url', spec.cloneUrl]);
      }
      try {
        await this.fetchIntoCache(spec, ['+refs/heads/*:refs/remotes/origin/*'], true);
      } catch (err) {
        const raw = (err as Error).message;
        const failure = remoteFailure(spec.cloneUrl, raw);
        if (failure instanceof GitUnreachableError) throw failure;
        throw new GitError(`fetching ${spec.slug}: ${scrub(raw).trim().split('\n').slice(-5).join(' | ')}`);
      }
      return defaultBranch;
    });
  }

  /**
   * Fetches `refspecs` from the repository's resolved URL into the clone cache: the authenticated
   * fetch runs in an authority directory (objects land in the cache's store), then a local fetch
   * without the token moves the refs into the cache. Call under the repo lock.
   */
  private async fetchIntoCache(spec: RepoSpec, refspecs: string[], prune: boolean): Promise<void> {
    const cache = this.cachePath(spec);
    const have = await this.git(cache).raw(['for-each-ref', '--format=%(objectname) %(refname)']);
    const pruneArg = prune ? ['--prune'] : [];
    await this.authority(cache, have, async (g, gitDir) => {
      await g.raw(['fetch', '--verbose', ...pruneArg, spec.cloneUrl, ...refspecs]);
      // Same destination on both sides: the authority directory holds exactly the refs we want.
      const local = refspecs.map((r) => {
        const dst = r.split(':')[1]!;
        return `+${dst}:${dst}`;
      });
      await this.git(cache).raw(['fetch', '--verbose', ...pruneArg, gitDir, ...local]);
    });
  }

  /** Pushes `refspecs` (plus `flags`) from the cache's objects to the repository's resolved URL. */
  private async pushFromCache(spec: RepoSpec, flags: string[], refspecs: string[]): Promise<void> {
    await this.authority(this.cachePath(spec), '', (g) => g.raw(['push', '--verbose', ...flags, spec.cloneUrl, ...refspecs]));
  }

  /**
   * Creates (or reuses) the task's worktree. A new branch starts from the remote default branch;
   * an existing remote branch (revision, resume on another host) is checked out as it is.
   */
  async prepare(spec: RepoSpec, key: string, branch: string, baseBranch: string, startAt?: string): Promise<Worktree> {
    const wt = this.worktreePath(key);
    if (existsSync(path.join(wt, '.git'))) return { path: wt, branch, baseBranch };
    return this.locks.run(spec.slug, async () => {
      const cache = this.cachePath(spec);
      const g = this.git(cache);
      await this.run('pruning worktrees', () => g.raw(['worktree', 'prune']));
      rmSync(wt, { recursive: true, force: true });
      // One command for both questions (simple-git waits 50 ms after every command that prints nothing).
      const refs = (await g.raw(['for-each-ref', '--format=%(refname)', `refs/heads/${branch}`, `refs/remotes/origin/${branch}`])).split(
        '\n',
      );
      const remoteHas = refs.includes(`refs/remotes/origin/${branch}`);
      const localHas = refs.includes(`refs/heads/${branch}`);
      // startAt: a WIP checkpoint of the task, when another worker is taking it over.
      const start = startAt ?? (remoteHas ? `origin/${branch}` : `origin/${baseBranch}`);
      if (localHas) await this.run('resetting branch', () => g.raw(['branch', '-f', branch, start]));
      const args = localHas ? ['worktree', 'add', wt, branch] : ['worktree', 'add', '-b', branch, wt, start];
      await this.run(`creating worktree ${key}`, () => g.raw(args));
      return { path: wt, branch, baseBranch };
    });
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
      await this.run('checkpoint: pushing', () => this.pushFromCache(spec, ['--force'], [`${commit}:${wipRef(taskId)}`]));
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
        await this.fetchIntoCache(spec, [`+${wipRef(taskId)}:${wipRef(taskId)}`], false);
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
      const has = (await this.authority(undefined, '', (g) => g.raw(['ls-remote', spec.cloneUrl, wipRef(taskId)])).catch(() => '')).trim();
      if (has) await this.pushFromCache(spec, ['--delete'], [wipRef(taskId)]).catch(() => undefined);
      await this.git(this.cachePath(spec))
        .raw(['update-ref', '-d', wipRef(taskId)])
        .catch(() => undefined);
    });
  }

  /** Commits everything the agent left uncommitted. Returns true when a commit was made. */
  async commitAll(wt: string, message: string): Promise<boolean> {
    const g = this.git(wt);
    const status = await g.raw(['status', '--porcelain']);
    if (!status.trim()) return false;
    await this.run('staging changes', () => g.raw(['add', '-A']));
    await this.run('committing', () => g.raw(['commit', '--no-verify', '-m', scrub(message)]));
    return true;
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
    const head = await this.run('reading HEAD', () => this.headSha(wt));
    await this.run(`pushing ${branch}`, () => this.pushFromCache(spec, [], [`${head}:refs/heads/${branch}`]));
  }

  /** Deletes a merged task branch on the remote (never the default branch). */
  async deleteRemoteBranch(spec: RepoSpec, branch: string, baseBranch: string): Promise<void> {
    if (!branch || branch === baseBranch) return;
    await this.locks.run(spec.slug, () =>
      this.run(`deleting ${branch}`, () => this.pushFromCache(spec, ['--delete'], [`refs/heads/${branch}`])),
    );
  }

  /** Removes the worktree and its local branch ref; the pushed branch stays on the remote. */
  /**
   * Removes a worktree, its registration in the cache and its local branch. Each step is tried even
   * when an earlier one failed; what is left afterwards (a registration, the branch) is an error
   * naming git's reasons, so a leaking worktree shows up in the log instead of piling up unseen.
   */
  async remove(spec: RepoSpec, key: string, branch?: string): Promise<void> {
    const wt = this.worktreePath(key);
    await this.locks.run(spec.slug, async () => {
      const cache = this.cachePath(spec);
      const reasons: string[] = [];
      const attempt = (p: Promise<unknown>) =>
        p.catch((err: Error) => {
          reasons.push(err.message.trim().split('\n')[0]!);
        });
      const g = existsSync(cache) ? this.git(cache) : undefined;
      if (g) {
        await attempt(g.raw(['worktree', 'remove', '--force', wt]));
        await attempt(g.raw(['worktree', 'prune']));
      }
      rmSync(wt, { recursive: true, force: true });
      if (!g) return;
      const registered = (await g.raw(['worktree', 'list', '--porcelain'])).split('\n').includes(`worktree ${wt}`);
      if (branch) await attempt(g.raw(['branch', '-D', branch]));
      const branchLeft = branch ? (await g.raw(['branch', '--list', branch])).trim() !== '' : false;
      if (registered || branchLeft) {
        const left = [registered ? `worktree ${wt} is still registered` : '', branchLeft ? `branch ${branch} still exists` : ''].filter(
          Boolean,
        );
        throw new Error(`could not remove the worktree completely: ${left.join(', ')} (${reasons.join('; ') || 'no error from git'})`);
      }
    });
  }
}
