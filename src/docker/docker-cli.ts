// The docker CLI through execa: one place that knows the command, its environment and its timeouts.
import { execa } from 'execa';
import { DomainError } from '../errors.js';
import { scrub } from '../secrets.js';

export interface DockerResult {
  ok: boolean;
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the command could not be started at all (ENOENT, EACCES). */
  spawnError?: string;
  durationMs: number;
}

export interface DockerCliOptions {
  command: string;
  /** The complete environment of every docker process (config.baseEnv + docker.env). */
  env: Record<string, string>;
  /** Working directory when the caller gives none. */
  cwd: string;
}

/** Why docker cannot be used; becomes a 503 for the agent. */
export class DockerUnavailableError extends DomainError {
  constructor(message: string) {
    super('unavailable', 'docker_unavailable', message);
  }
}

export class DockerCli {
  constructor(private readonly o: DockerCliOptions) {}

  get command(): string {
    return this.o.command;
  }

  async run(args: string[], opts: { cwd?: string; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<DockerResult> {
    const started = Date.now();
    const r = await execa(this.o.command, args, {
      cwd: opts.cwd ?? this.o.cwd,
      env: this.o.env,
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      timeout: opts.timeoutMs ?? 60_000,
      forceKillAfterDelay: 5_000,
      ...(opts.signal ? { cancelSignal: opts.signal } : {}),
      maxBuffer: 16 * 1024 * 1024,
      encoding: 'utf8',
    });
    const code = (r as { code?: string }).code;
    const spawnError = r.exitCode === undefined && !r.timedOut && !r.isCanceled && code ? code : undefined;
    return {
      ok: !r.failed,
      exitCode: r.exitCode,
      stdout: typeof r.stdout === 'string' ? r.stdout : '',
      stderr: typeof r.stderr === 'string' ? r.stderr : '',
      timedOut: r.timedOut,
      spawnError,
      durationMs: Date.now() - started,
    };
  }

  /** Throws DockerUnavailableError when the command is missing or the daemon does not answer. */
  async ensureAvailable(signal?: AbortSignal): Promise<string> {
    const r = await this.run(['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 20_000, signal });
    if (r.ok) return r.stdout.trim();
    throw new DockerUnavailableError(describeUnavailable(this.o.command, r));
  }
}

export function describeUnavailable(command: string, r: DockerResult): string {
  if (r.spawnError === 'ENOENT') {
    return `Docker is not installed on the Factory host ("${command}" not found): test and preview environments are unavailable. Test without an environment instead.`;
  }
  if (r.spawnError)
    return `Docker cannot be run on the Factory host ("${command}": ${r.spawnError}): test and preview environments are unavailable.`;
  if (r.timedOut)
    return 'The Docker daemon on the Factory host did not answer within 20 s: test and preview environments are unavailable right now.';
  const why = firstLine(r.stderr) || firstLine(r.stdout) || `exit code ${r.exitCode}`;
  return `The Docker daemon on the Factory host is not reachable (${why}): test and preview environments are unavailable right now.`;
}

export function firstLine(s: string): string {
  return scrub(
    s
      .trim()
      .split('\n')
      .find((l) => l.trim())
      ?.trim() ?? '',
  ).slice(0, 300);
}

/** The last `lines` lines of a text, at most `chars` characters. */
export function tail(s: string, lines = 40, chars = 4000): string {
  const t = s.replace(/\s+$/, '').split('\n').slice(-lines).join('\n');
  return scrub(t.length > chars ? `…${t.slice(-chars)}` : t);
}
