// Runs agents inside bubblewrap (see bwrap.ts for what the agent sees) with a filtered network
// (egress.ts). `agent.sandbox`: on = never run an agent without it; auto = use it where this
// machine allows it and warn loudly where it does not; off = never.
import { execa } from 'execa';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import { PACKAGE_ROOT } from '../../paths.js';
import { bwrapArgs, launcherScript, SANDBOX_PROXY_PORT } from './bwrap.js';
import { startEgress } from './egress.js';

/** Home files and folders that hold credentials of the operator (never the agent's). */
const HOME_SECRETS = [
  '.ssh',
  '.aws',
  '.azure',
  '.config/gcloud',
  '.config/gh',
  '.gnupg',
  '.docker',
  '.kube',
  '.netrc',
  '.git-credentials',
  '.npmrc',
  '.pypirc',
];
/** State the agent CLIs write in the home directory (sessions, settings). */
const AGENT_STATE = ['.claude', '.claude.json', '.codex', '.gemini'];

export interface SandboxStatus {
  mode: 'auto' | 'on' | 'off';
  /** Agents started now run sandboxed. */
  sandboxed: boolean;
  /** Why they do not (empty when they do). */
  reason: string;
}

export interface SandboxRunInput {
  taskId: number;
  worktree: string;
  cache: string;
  /** Hosts this run may reach. */
  allow: string[];
  env: Record<string, string>;
  onRefused?(destination: string): void;
}

export interface SandboxedRun {
  command: string;
  args: string[];
  env: Record<string, string>;
  dispose(): Promise<void>;
}

/** `factory doctor`'s view of the sandbox: what runs here, and what to do when it does not. */
export async function checkSandbox(
  config: Config,
  logger: Logger,
): Promise<{ name: string; level: 'ok' | 'warn' | 'fail'; message: string; fix?: string }> {
  const sandbox = new AgentSandbox({ config, logger });
  await sandbox.init();
  const s = sandbox.status();
  if (s.sandboxed) return { name: 'sandbox', level: 'ok', message: `agents run in bubblewrap (agent.sandbox: ${s.mode})` };
  const fix =
    s.mode === 'off' ? 'set agent.sandbox: auto (or on)' : 'apt-get install bubblewrap socat, and allow unprivileged user namespaces';
  return { name: 'sandbox', level: s.mode === 'on' ? 'fail' : 'warn', message: `AGENTS RUN UNSANDBOXED: ${s.reason}`, fix };
}

/** The /health view: loud when agents run unsandboxed. */
export function sandboxHealth(s: SandboxStatus): SandboxStatus & { warning?: string } {
  return s.sandboxed ? s : { ...s, warning: `agents run UNSANDBOXED (${s.reason}): an agent can read Factory's data, config and secrets` };
}

export class SandboxUnavailableError extends Error {
  override name = 'SandboxUnavailableError';
}

export class AgentSandbox {
  private available: string | null = 'not probed yet';

  constructor(private readonly d: { config: Config; logger: Logger }) {}

  /** Tries bubblewrap for real (namespaces may be forbidden by the kernel or the container). */
  async init(): Promise<void> {
    if (this.d.config.agent.sandbox === 'off') return;
    this.available = await probeSandbox();
    const s = this.status();
    if (!s.sandboxed) this.d.logger.warn({ reason: s.reason }, 'AGENTS RUN UNSANDBOXED: they can read and write everything Factory can');
  }

  status(): SandboxStatus {
    const mode = this.d.config.agent.sandbox;
    if (mode === 'off') return { mode, sandboxed: false, reason: 'agent.sandbox is off' };
    return { mode, sandboxed: this.available === null, reason: this.available ?? '' };
  }

  /** How to start one agent run: sandboxed, or as it is when the sandbox is off or unusable in auto. */
  async prepare(cmd: string, args: string[], input: SandboxRunInput): Promise<SandboxedRun> {
    const s = this.status();
    if (!s.sandboxed) {
      if (s.mode === 'on') throw new SandboxUnavailableError(`agent.sandbox is on but the sandbox cannot run here: ${s.reason}`);
      return { command: cmd, args, env: input.env, dispose: async () => {} };
    }
    const c = this.d.config;
    const api = sandboxApiTarget(input.env.FACTORY_API_URL, c.server.port);
    const root = path.join(c.data_dir, 'sandbox');
    mkdirSync(root, { recursive: true, mode: 0o700 });
    const egress = await startEgress({
      allow: input.allow,
      api,
      logger: this.d.logger.child({ taskId: input.taskId }),
      onRefused: input.onRefused,
      root,
    });
    const home = input.env.HOME || os.homedir();
    const existing = (paths: string[]) => paths.filter((p) => existsSync(p));
    const homeSecrets = existing(HOME_SECRETS.map((p) => path.join(home, p)));
    const policy = {
      worktree: input.worktree,
      cache: input.cache,
      visibleInTmp: underTmp(existing([PACKAGE_ROOT, c.rootDir, ...(path.isAbsolute(cmd) ? [path.dirname(cmd)] : [])])),
      hiddenDirs: existing([c.data_dir, c.repos_dir, c.worktrees_dir, ...c.agent.sandbox_hidden.map((p) => path.resolve(c.rootDir, p))])
        .filter(isDir)
        .concat(homeSecrets.filter(isDir)),
      hiddenFiles: existing([path.join(c.rootDir, '.env'), ...(c.configPath ? [c.configPath] : [])]).concat(
        homeSecrets.filter((p) => !isDir(p)),
      ),
      writable: existing([
        ...AGENT_STATE.map((p) => path.join(home, p)),
        ...(input.env.CLAUDE_CONFIG_DIR ? [input.env.CLAUDE_CONFIG_DIR] : []),
        ...c.agent.sandbox_writable.map((p) => path.resolve(c.rootDir, p)),
      ]),
      egressDir: egress.dir,
      apiPort: api?.port ?? null,
    };
    const proxy = `http://127.0.0.1:${SANDBOX_PROXY_PORT}`;
    const env: Record<string, string> = {
      // Caches go to the private /tmp: the home directory is read-only inside.
      npm_config_cache: '/tmp/.npm',
      XDG_CACHE_HOME: '/tmp/.cache',
      ...input.env,
      HTTPS_PROXY: proxy,
      HTTP_PROXY: proxy,
      https_proxy: proxy,
      http_proxy: proxy,
      NO_PROXY: '127.0.0.1,localhost',
      no_proxy: '127.0.0.1,localhost',
      ...(api ? { FACTORY_API_URL: `http://127.0.0.1:${api.port}` } : {}),
      FACTORY_SANDBOX: 'bwrap',
    };
    const args2 = [
      ...bwrapArgs(policy, (n) => existsSync(path.join(input.cache, n))),
      '--',
      'bash',
      '-c',
      launcherScript(policy.apiPort),
      'factory-sandbox',
      cmd,
      ...args,
    ];
    return { command: 'bwrap', args: args2, env, dispose: () => egress.close() };
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Where the API relay connects. Inside, the agent speaks plain HTTP to 127.0.0.1, so an https
 * public_url (TLS in front of Factory) is replaced by Factory's own port on this host.
 */
export function sandboxApiTarget(url: string | undefined, localPort: number): { host: string; port: number } | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:') return { host: '127.0.0.1', port: localPort };
    return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) || 80 };
  } catch {
    return null;
  }
}

/** null when a sandboxed command runs here, else why not (tests skip on it outside CI too). */
export async function probeSandbox(): Promise<string | null> {
  for (const tool of ['socat', 'bash']) {
    const r = await execa(tool, [tool === 'socat' ? '-V' : '--version'], { reject: false, timeout: 10_000 });
    if (r.exitCode !== 0) return `${tool} is not installed (Debian: apt-get install bubblewrap socat)`;
  }
  const r = await execa(
    'bwrap',
    ['--die-with-parent', '--unshare-all', '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', 'true'],
    { reject: false, timeout: 10_000 },
  );
  if (r.exitCode === 0) return null;
  const message = String(r.message ?? '');
  const why = (String(r.stderr ?? '') || message).split('\n')[0];
  return /ENOENT/.test(message)
    ? 'bubblewrap is not installed (Debian: apt-get install bubblewrap socat)'
    : `bubblewrap cannot create namespaces here: ${why}`;
}

/** The outermost of the paths that lie under /tmp (a path inside another is covered by it). */
function underTmp(paths: string[]): string[] {
  const inTmp = [...new Set(paths.map((p) => path.resolve(p)))].filter((p) => p.startsWith('/tmp/'));
  return inTmp.filter((p) => !inTmp.some((q) => q !== p && p.startsWith(`${q}/`)));
}
