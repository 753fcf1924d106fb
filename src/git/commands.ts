// How Factory runs git: plain commands in the worktree or clone cache (no token, hooks and fsmonitor
// off), and authenticated ones in an authority directory written for that one command (authority.ts).
import path from 'node:path';
import { execa } from 'execa';
import { simpleGit, type SimpleGit } from 'simple-git';
import { configEnv, createAuthorityDir, SAFE_COMMAND_CONFIG } from './authority.js';
import { GitError, lastLines } from './errors.js';

export interface GitCommandOptions {
  /** Where authority directories are created (inside Factory's own repos directory). */
  authorityRoot: string;
  githubToken: string;
  authorName: string;
  authorEmail: string;
  /** Environment git runs with (PATH, HOME…); secrets are added per command. */
  baseEnv: Record<string, string>;
}

// simple-git waits a fixed 50 ms after any command that prints nothing (no option turns that off), so
// commands on a task's start path are chosen to print: not --quiet, and patterns that always match.
// Those that may print nothing (update-ref, add, status, worktree remove) run through `silent`, on execa.
export class GitCommands {
  constructor(private readonly opts: GitCommandOptions) {}

  /** A git in `dir` (or none) with the author set, no token, hooks and fsmonitor off. */
  local(dir: string | undefined, extraEnv: Record<string, string> = {}): SimpleGit {
    return this.spawn(dir, this.localEnv(extraEnv));
  }

  /**
   * Runs a local git command that may print nothing on success (so not through simple-git), in
   * `dir`, with `input` on its stdin; resolves with what it printed.
   */
  async silent(dir: string, args: string[], input?: string): Promise<string> {
    const r = await this.attempt(dir, args, {}, input);
    if (r.exitCode !== 0) throw new GitError(`git ${args[0]}: ${lastLines(r.stderr || r.stdout)}`);
    return r.stdout;
  }

  /** Runs a local git command and resolves with how it ended, whatever that was (its caller decides). */
  async attempt(
    dir: string,
    args: string[],
    extraEnv: Record<string, string> = {},
    input?: string,
  ): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const r = await execa('git', args, {
      cwd: dir,
      env: this.localEnv(extraEnv),
      extendEnv: false,
      input,
      reject: false,
      timeout: 300_000,
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr || r.message || '') };
  }

  private localEnv(extraEnv: Record<string, string> = {}): Record<string, string> {
    const o = this.opts;
    return {
      ...o.baseEnv,
      GIT_TERMINAL_PROMPT: '0',
      GIT_AUTHOR_NAME: o.authorName,
      GIT_AUTHOR_EMAIL: o.authorEmail,
      GIT_COMMITTER_NAME: o.authorName,
      GIT_COMMITTER_EMAIL: o.authorEmail,
      ...configEnv(SAFE_COMMAND_CONFIG),
      ...extraEnv,
    };
  }

  /**
   * Runs `fn` with a git bound to a fresh authority directory (see authority.ts) that reads and
   * writes the objects of `cache` (when given) and starts with `refs`. Removed afterwards.
   */
  async authority<T>(cache: string | undefined, refs: string, fn: (g: SimpleGit, gitDir: string) => Promise<T>): Promise<T> {
    const objects = cache && path.join(cache, 'objects');
    const dir = createAuthorityDir(this.opts.authorityRoot, refs, objects);
    try {
      return await fn(this.spawn(dir.gitDir, this.authEnv(dir.gitDir, objects)), dir.gitDir);
    } finally {
      dir.remove();
    }
  }

  /** Runs `fn`; a failure becomes a GitError saying `what` with the last lines of git's message, scrubbed. */
  async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new GitError(`${what}: ${lastLines((err as Error).message)}`);
    }
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

  private spawn(dir: string | undefined, env: Record<string, string>): SimpleGit {
    // simple-git guards GIT_* variables; these are ours, set on purpose.
    const g = simpleGit({
      baseDir: dir,
      unsafe: { allowUnsafeConfigEnvCount: true, allowUnsafeConfigPaths: true, allowUnsafeHooksPath: true, allowUnsafeFsMonitor: true },
      allowEnvironment: Object.keys(env).filter((k) => k.startsWith('GIT_')),
      timeout: { block: 300_000 },
    });
    return g.env(env);
  }
}
