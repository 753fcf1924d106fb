// Shared set-up for end-to-end agent tests: a local bare origin, the fake claude, a fake GitHub.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { FAKE_CLAUDE_PATH, readFakeClaudeLog } from './fakes/claude-helpers.js';
import { FakeGitHub } from './fakes/http/index.js';
import { createTestEnv, tempDir, waitFor, type TestEnv } from './helpers.js';
import type { WireOptions } from '../src/composition/root.js';
import { parseRepoSpec, type RepoSpec } from '../src/git/repo-spec.js';
import { Workspace, type WorkspaceOptions } from '../src/git/workspace.js';

export const GITHUB_TOKEN = 'ghp_TESTTOKEN_abcdef1234567890';

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.com', ...args], { cwd, encoding: 'utf8' });

/** A bare repository at <base>/<owner>/<name>.git with one commit on `branch`. */
export function makeOrigin(base: string, owner: string, name: string, branch = 'main'): string {
  const bare = path.join(base, owner, `${name}.git`);
  mkdirSync(bare, { recursive: true });
  git(bare, 'init', '--bare', '--quiet', '-b', branch);
  const work = tempDir('factory-seed-');
  git(work, 'init', '--quiet', '-b', branch);
  writeFileSync(path.join(work, 'README.md'), `# ${name}\n`);
  git(work, 'add', '.');
  git(work, 'commit', '--quiet', '-m', 'initial');
  git(work, 'remote', 'add', 'origin', bare);
  git(work, 'push', '--quiet', 'origin', branch);
  return bare;
}

/** A temp directory with a bare origin acme/web under `<dir>/origins`, and the spec that resolves to it. */
export function localOrigin(prefix: string): { dir: string; bare: string; spec: RepoSpec } {
  const dir = tempDir(prefix);
  const origins = path.join(dir, 'origins');
  const bare = makeOrigin(origins, 'acme', 'web');
  return { dir, bare, spec: parseRepoSpec('acme/web', { repos: {}, defaultOrg: '', cloneBase: origins }) };
}

/** A Workspace under `dir` with no token, as the git tests use it directly. */
export function localWorkspace(dir: string, extra: Partial<WorkspaceOptions> = {}): Workspace {
  return new Workspace({
    reposDir: path.join(dir, 'repos'),
    worktreesDir: path.join(dir, 'worktrees'),
    githubToken: '',
    authorName: 'Factory',
    authorEmail: 'factory@localhost',
    baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
    ...extra,
  });
}

export function gitOut(cwd: string, ...args: string[]): string {
  return git(cwd, ...args).trim();
}

export interface AgentEnv extends TestEnv {
  github: FakeGitHub;
  origins: string;
  claudeLog: string;
  stateDir: string;
  pidFile: string;
  fakeLog(): ReturnType<typeof readFakeClaudeLog>;
  createTask(body: Record<string, unknown>, autoRun?: boolean): Promise<{ id: number; [k: string]: unknown }>;
  waitStatus(id: number, status: string | string[], timeoutMs?: number): Promise<Record<string, any>>;
  getTask(id: number): Promise<Record<string, any>>;
  stopAll(): Promise<void>;
}

/**
 * `sandbox`: run the fake agent in the bubblewrap sandbox. Off by default: most tests look at the
 * agent's processes from outside (pids), which a PID namespace renumbers.
 */
export async function createAgentEnv(
  opts: {
    overrides?: Record<string, unknown>;
    env?: Record<string, string>;
    repos?: Array<[string, string, string?]>;
    dir?: string;
    github?: FakeGitHub;
    wireOptions?: WireOptions;
    sandbox?: boolean;
  } = {},
): Promise<AgentEnv> {
  const dir = opts.dir ?? tempDir();
  const origins = path.join(dir, 'origins');
  for (const [owner, name, branch] of opts.repos ?? [['acme', 'web']]) {
    if (!existsSync(path.join(origins, owner, `${name}.git`))) makeOrigin(origins, owner, name, branch);
  }
  const github = opts.github ?? new FakeGitHub({ validToken: GITHUB_TOKEN });
  const apiUrl = github.url || (await github.start());
  // The fake agent's own files, in one folder a sandboxed agent may write.
  const agentIo = path.join(dir, 'agent-io');
  mkdirSync(agentIo, { recursive: true });
  const claudeLog = path.join(agentIo, 'claude-log.jsonl');
  const stateDir = path.join(agentIo, 'claude-state');
  const pidFile = path.join(agentIo, 'grandchild.pid');
  const env = await createTestEnv({
    dir,
    env: { GITHUB_TOKEN, ...opts.env },
    wireOptions: opts.wireOptions ?? { board: { outbox: { baseDelayMs: 50, maxDelayMs: 200, idleMs: 100 } }, memoryUrl: 'mem://' },
    overrides: {
      github: { api_url: apiUrl, clone_base: origins },
      default_org: 'acme',
      ...opts.overrides,
      // Keys a test gives under `agent` add to the fake agent's settings.
      agent: {
        command: FAKE_CLAUDE_PATH,
        kill_grace_seconds: 1,
        sandbox: opts.sandbox ? 'on' : 'off',
        sandbox_writable: [agentIo],
        env: { FAKE_CLAUDE_LOG: claudeLog, FAKE_CLAUDE_STATE_DIR: stateDir, FAKE_CLAUDE_PIDFILE: pidFile },
        ...(opts.overrides?.agent as object | undefined),
      },
    },
  });
  const inject = env.app.inject.bind(env.app);
  const getTask = async (id: number) => (await inject({ url: `/api/tasks/${id}` })).json();
  return {
    ...env,
    github,
    origins,
    claudeLog,
    stateDir,
    pidFile,
    fakeLog: () => readFakeClaudeLog(claudeLog),
    async createTask(body, autoRun = true) {
      const res = await inject({
        method: 'POST',
        url: `/api/tasks${autoRun ? '?auto_run=true' : ''}`,
        payload: { repo: 'acme/web', ...body },
      });
      if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`);
      return res.json();
    },
    getTask,
    async waitStatus(id, status, timeoutMs = 30_000) {
      const want = Array.isArray(status) ? status : [status];
      return waitFor(
        async () => {
          const t = await getTask(id);
          return want.includes(t.status) ? t : undefined;
        },
        { timeoutMs, what: `task ${id} ${want.join('|')}` },
      );
    },
    async stopAll() {
      await env.close();
      if (!opts.github) await github.stop();
    },
  };
}

/** True when the process is gone (or a zombie waiting to be reaped). */
export function processGone(pid: number): boolean {
  try {
    const stat = execFileSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return stat.split(') ')[1]?.startsWith('Z') ?? true;
  } catch {
    return true;
  }
}
