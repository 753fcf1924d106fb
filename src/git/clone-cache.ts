// The clone cache: one bare clone per repository that every worktree of it shares, and all talk
// with the remote (ls-remote, fetch, push) through authority directories (see authority.ts).
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { RepoSpec } from './repo-spec.js';
import type { GitCommands } from './commands.js';
import { GitError, GitUnreachableError, isMissingRemoteRef, lastLines, RepoNotFoundError, remoteFailure } from './errors.js';
import { scrub } from '../secrets.js';
import { readRefFiles } from './ref-files.js';

/** What a task needs from the remote; everything else stays as last fetched. */
export interface SyncWants {
  /** The branch the task starts from; the remote's default branch when not given. */
  base?: string;
  /** The task's own branch, fetched when the remote has it (a revision, or a resume on another host). */
  branch?: string;
}

/** Where fetches write in the clone cache: tracking refs and Factory's hidden refs. */
const FETCHED_NAMESPACES = ['refs/remotes/origin', 'refs/factory'];
/** The remote's HEAD, fetched only into the authority directory to compare with the default branch. */
const REMOTE_HEAD = 'refs/factory/remote-head';

/** `update-ref --stdin` commands turning `before` into `after`; empty when they are the same. */
function refUpdates(before: Map<string, string>, after: Map<string, string>): string {
  const lines: string[] = [];
  for (const [ref, sha] of after) if (before.get(ref) !== sha) lines.push(`update ${ref} ${sha}`);
  for (const ref of before.keys()) if (!after.has(ref)) lines.push(`delete ${ref}`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

export class CloneCache {
  /** Default branch per repo as `ls-remote` last said, and when. */
  private readonly defaults = new Map<string, { branch: string; at: number }>();
  /** Per repo, the fetched refs (ref → commit) as the last fetch left them in the cache. */
  private readonly fetched = new Map<string, Map<string, string>>();

  constructor(
    private readonly cmd: GitCommands,
    private readonly reposDir: string,
    /** How long a learned default branch is used before `ls-remote` asks again. */
    private readonly defaultBranchTtlMs: number,
  ) {}

  path(spec: RepoSpec): string {
    return path.join(this.reposDir, spec.owner, `${spec.name}.git`);
  }

  /** Checks that a remote repository exists and is readable; returns its default branch. */
  async remoteDefaultBranch(url: string): Promise<string> {
    let out: string;
    try {
      out = await this.cmd.authority(undefined, '', (g) => g.raw(['ls-remote', '--symref', url, 'HEAD']));
    } catch (err) {
      throw remoteFailure(url, (err as Error).message);
    }
    const m = /^ref: refs\/heads\/(\S+)\s+HEAD/m.exec(out);
    if (!m) throw new RepoNotFoundError(`repository ${scrub(url)} has no default branch (is it empty?)`);
    return m[1]!;
  }

  /**
   * Brings what the task needs into the clone cache (creating it the first time) and returns the
   * remote's default branch. One fetch, of the task's base and branch only: the repository's
   * existence and default branch are asked (`ls-remote`) only for a new cache, when the remembered
   * answer is older than the TTL, or when the fetch shows it changed: the fetch also brings the
   * remote's HEAD, and a HEAD that is not the remembered default branch's commit means it moved.
   * Call under the repo lock (Workspace.sync).
   */
  async refresh(spec: RepoSpec, wants: SyncWants = {}): Promise<string> {
    const existed = await this.ensureCache(spec);
    const remembered = existed ? this.rememberedDefault(spec.slug) : undefined;
    let defaultBranch = spec.defaultBranch ?? remembered ?? (await this.learnDefault(spec));
    // The remote's HEAD tells nothing about an explicit base, nor about a configured default.
    const checkHead = !wants.base && !spec.defaultBranch;
    try {
      const headMoved = await this.fetchForTask(spec, wants.base ?? defaultBranch, wants.branch, checkHead);
      if (!headMoved) return defaultBranch;
    } catch (err) {
      // A remembered default that is gone from the remote was renamed: ask again, once.
      if (!(remembered && checkHead && isMissingRemoteRef(err))) throw this.fetchFailure(spec, err);
    }
    defaultBranch = await this.learnDefault(spec);
    await this.fetchForTask(spec, defaultBranch, wants.branch, false).catch((err: unknown) => {
      throw this.fetchFailure(spec, err);
    });
    return defaultBranch;
  }

  /** Creates the bare clone cache when missing; returns whether it already existed. */
  private async ensureCache(spec: RepoSpec): Promise<boolean> {
    const cache = this.path(spec);
    if (existsSync(path.join(cache, 'HEAD'))) return true;
    rmSync(cache, { recursive: true, force: true });
    mkdirSync(path.dirname(cache), { recursive: true });
    await this.cmd.run(`creating the clone cache of ${spec.slug}`, () => this.cmd.local(undefined).raw(['init', '--bare', cache]));
    // For the agent's `git remote -v` and the like only: Factory never reads it (it pushes to spec.cloneUrl).
    await this.cmd.local(cache).raw(['config', 'remote.origin.url', spec.cloneUrl]);
    return false;
  }

  /** The default branch as configured or remembered (within the TTL), without asking the remote. */
  knownDefault(spec: RepoSpec): string | undefined {
    return spec.defaultBranch ?? this.rememberedDefault(spec.slug);
  }

  private rememberedDefault(slug: string): string | undefined {
    const known = this.defaults.get(slug);
    const ttl = this.defaultBranchTtlMs;
    return known && Date.now() - known.at < ttl ? known.branch : undefined;
  }

  /** Asks the remote for its default branch (and so whether it exists at all) and remembers it. */
  private async learnDefault(spec: RepoSpec): Promise<string> {
    const branch = await this.remoteDefaultBranch(spec.cloneUrl);
    this.defaults.set(spec.slug, { branch, at: Date.now() });
    return branch;
  }

  /**
   * Fetches `base` and, when the remote has it, `branch` (a glob refspec matches nothing without
   * failing; --prune drops a branch deleted on the remote). With `checkHead`, also the remote's
   * HEAD: returns true when HEAD is not `base`'s commit (the default branch moved elsewhere).
   */
  private async fetchForTask(spec: RepoSpec, base: string, branch: string | undefined, checkHead: boolean): Promise<boolean> {
    const refspecs = [`+refs/heads/${base}:refs/remotes/origin/${base}`];
    if (branch && branch !== base) refspecs.push(`+refs/heads/${branch}*:refs/remotes/origin/${branch}*`);
    const heads = await this.fetch(spec, refspecs, true, checkHead ? `refs/remotes/origin/${base}` : undefined);
    return heads !== undefined && heads.remote !== heads.tracked;
  }

  private fetchFailure(spec: RepoSpec, err: unknown): Error {
    const raw = (err as Error).message;
    const failure = remoteFailure(spec.cloneUrl, raw);
    if (failure instanceof GitUnreachableError) return failure;
    return new GitError(`fetching ${spec.slug}: ${lastLines(raw)}`);
  }

  /**
   * Fetches `refspecs` from the repository's resolved URL into the clone cache. The authenticated
   * fetch runs in an authority directory seeded with the cache's refs (objects land in the cache's
   * store); whatever refs it changed are then set in the cache with one `update-ref`, without the
   * token. With `compareHead` (a tracking ref), the remote's HEAD is fetched too, into the authority
   * directory only, and both commits are returned. Call under the repo lock.
   */
  async fetch(
    spec: RepoSpec,
    refspecs: string[],
    prune: boolean,
    compareHead?: string,
  ): Promise<{ remote: string; tracked: string } | undefined> {
    const cache = this.path(spec);
    const before = await readRefFiles(cache, FETCHED_NAMESPACES);
    const have = [...before].map(([ref, id]) => `${id} ${ref}`).join('\n');
    const remoteSpecs = compareHead ? [...refspecs, `+HEAD:${REMOTE_HEAD}`] : refspecs;
    return this.cmd.authority(cache, have, async (g, gitDir) => {
      await g.raw(['fetch', '--verbose', ...(prune ? ['--prune'] : []), spec.cloneUrl, ...remoteSpecs]);
      const after = await readRefFiles(gitDir, FETCHED_NAMESPACES);
      const remoteHead = after.get(REMOTE_HEAD) ?? '';
      after.delete(REMOTE_HEAD);
      // The authority directory started with exactly `have`: any difference is the fetch's doing.
      const updates = refUpdates(before, after);
      if (updates) await this.cmd.silent(cache, ['update-ref', '--stdin'], updates);
      this.fetched.set(spec.slug, after);
      return compareHead ? { remote: remoteHead, tracked: after.get(compareHead) ?? '' } : undefined;
    });
  }

  /** Pushes `refspecs` (plus `flags`) from the cache's objects to the repository's resolved URL. */
  async push(spec: RepoSpec, flags: string[], refspecs: string[]): Promise<void> {
    await this.cmd.authority(this.path(spec), '', (g) => g.raw(['push', '--verbose', ...flags, spec.cloneUrl, ...refspecs]));
  }

  /** `ls-remote` of one ref pattern at the repository's resolved URL. */
  async lsRemote(spec: RepoSpec, ref: string): Promise<string> {
    return this.cmd.authority(undefined, '', (g) => g.raw(['ls-remote', spec.cloneUrl, ref]));
  }

  /**
   * The commit of a tracking ref (`refs/remotes/origin/<branch>`) as the last fetch under the repo
   * lock left it; undefined when that fetch did not have it, or when none ran in this process.
   * Saves asking git again on the task's start path.
   */
  lastFetched(spec: RepoSpec, ref: string): string | undefined {
    return this.fetched.get(spec.slug)?.get(ref);
  }
}
