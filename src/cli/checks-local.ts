// Doctor checks of this machine: Node, git, the agent command, the data directory, the database,
// prompt files and Docker. Each returns one result; none of them changes anything on disk.
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { AGENT_TYPES, type Config } from '../config.js';
import { listMigrations, openDb, schemaVersion, type Db } from '../db/connection.js';

export type Level = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  name: string;
  level: Level;
  message: string;
  /** What to do about a warn or fail. */
  fix?: string;
}

const GB = 1024 ** 3;
/** Below this much free space on the data volume the doctor warns. */
export const MIN_FREE_BYTES = 2 * GB;
const MIN_GIT: [number, number] = [2, 20];

interface RunOutput {
  ok: boolean;
  stdout: string;
  stderr: string;
  code: string | number | null;
}

/** Runs a command without a shell, with a deadline; never throws. */
export function runCommand(cmd: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<RunOutput> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 1024 * 1024, windowsHide: true }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { killed?: boolean; signal?: string }) | null;
      const code = e ? (e.killed ? 'timeout' : (e.code ?? e.signal ?? 'error')) : 0;
      resolve({ ok: !e, stdout: String(stdout), stderr: String(stderr), code });
    });
  });
}

const firstLine = (s: string) => s.trim().split('\n')[0]?.trim().slice(0, 160) ?? '';

export function checkNode(): CheckResult {
  const major = Number(process.versions.node.split('.')[0]);
  return major >= 20
    ? { name: 'node', level: 'ok', message: `Node.js ${process.versions.node}` }
    : { name: 'node', level: 'fail', message: `Node.js ${process.versions.node} is too old`, fix: 'install Node.js 20 or newer' };
}

export async function checkGit(env: Record<string, string>): Promise<CheckResult> {
  const out = await runCommand('git', ['--version'], env, 10_000);
  if (!out.ok) {
    return out.code === 'ENOENT'
      ? { name: 'git', level: 'fail', message: 'git is not installed (not found on PATH)', fix: 'install git (apt-get install git)' }
      : { name: 'git', level: 'fail', message: `git --version failed: ${firstLine(out.stderr) || String(out.code)}`, fix: 'reinstall git' };
  }
  const m = /(\d+)\.(\d+)/.exec(out.stdout);
  const version = m ? `${m[1]}.${m[2]}` : firstLine(out.stdout);
  if (m && (Number(m[1]) < MIN_GIT[0] || (Number(m[1]) === MIN_GIT[0] && Number(m[2]) < MIN_GIT[1]))) {
    return {
      name: 'git',
      level: 'warn',
      message: `git ${version} is old; worktree handling is tested with ${MIN_GIT.join('.')}+`,
      fix: 'upgrade git',
    };
  }
  return { name: 'git', level: 'ok', message: firstLine(out.stdout) };
}

/** Where a command would be found: a path with a slash as given, otherwise the first PATH entry that has it. */
export function resolveCommand(command: string, searchPath: string, baseDir: string): string | undefined {
  const executable = (p: string) => {
    try {
      accessSync(p, constants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (command.includes('/')) {
    const p = path.resolve(baseDir, command);
    return executable(p) ? p : undefined;
  }
  for (const dir of searchPath.split(path.delimiter).filter(Boolean)) {
    const p = path.join(dir, command);
    if (executable(p)) return p;
  }
  return undefined;
}

export async function checkAgent(config: Config): Promise<CheckResult> {
  const command = config.agent.command;
  const env = { ...config.baseEnv, ...config.agent.env };
  const found = resolveCommand(command, env.PATH ?? '', config.rootDir);
  const howToFix =
    'install Claude Code (npm install -g @anthropic-ai/claude-code) or set agent.command in config.yml to the full path of the claude executable';
  if (!found) {
    const where = command.includes('/') ? `at ${path.resolve(config.rootDir, command)}` : 'on PATH';
    return { name: 'agent', level: 'fail', message: `agent command "${command}" not found ${where} (or not executable)`, fix: howToFix };
  }
  const out = await runCommand(found, ['--version'], env, 10_000);
  if (!out.ok) {
    const why =
      out.code === 'timeout'
        ? 'did not finish within 10 s'
        : `failed (${String(out.code)}): ${firstLine(out.stderr) || firstLine(out.stdout)}`;
    return {
      name: 'agent',
      level: 'fail',
      message: `"${found} --version" ${why}`,
      fix: `run "${found} --version" by hand as this user and repair the installation`,
    };
  }
  const relative = command.includes('/') && !path.isAbsolute(command);
  return relative
    ? {
        name: 'agent',
        level: 'warn',
        message: `${found}: ${firstLine(out.stdout)}`,
        fix: 'use an absolute path for agent.command (agents run with the worktree as working directory)',
      }
    : { name: 'agent', level: 'ok', message: `${found}: ${firstLine(out.stdout)}` };
}

/** The agent needs either ANTHROPIC_API_KEY or a Claude Code login of the service user. */
export function checkAnthropic(config: Config): CheckResult {
  if (config.secrets.anthropicApiKey) return { name: 'anthropic', level: 'ok', message: 'ANTHROPIC_API_KEY is set' };
  const home = config.baseEnv.HOME ?? '';
  const dir = config.baseEnv.CLAUDE_CONFIG_DIR || (home ? path.join(home, '.claude') : '');
  const candidates = [dir && path.join(dir, '.credentials.json'), home && path.join(home, '.claude.json')].filter(Boolean);
  const login = candidates.find((p) => existsSync(p));
  return login
    ? {
        name: 'anthropic',
        level: 'ok',
        message: `ANTHROPIC_API_KEY is not set; agents use the Claude Code login in ${path.dirname(login)}`,
      }
    : {
        name: 'anthropic',
        level: 'warn',
        message: 'ANTHROPIC_API_KEY is not set and no Claude Code login was found for this user',
        fix: 'set ANTHROPIC_API_KEY in .env, or log in once as the service user (sudo -u factory -H claude)',
      };
}

function nearestExisting(dir: string): string {
  let cur = dir;
  while (!existsSync(cur) && path.dirname(cur) !== cur) cur = path.dirname(cur);
  return cur;
}

/** The pid in data_dir/factory.lock when that process is alive (the service is running). */
export function lockHolder(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(dataDir, 'factory.lock'), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    // EPERM: alive, but owned by another user (the service user).
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

export function checkDataDir(config: Config): CheckResult {
  const dir = config.data_dir;
  const name = 'data_dir';
  let target = dir;
  let note = '';
  if (!existsSync(dir)) {
    // Creating it here would leave it owned by whoever ran the doctor; only check that it can be created.
    target = nearestExisting(dir);
    try {
      accessSync(target, constants.W_OK);
    } catch {
      return {
        name,
        level: 'fail',
        message: `${dir} does not exist and ${target} is not writable`,
        fix: `create it for the service user: mkdir -p ${dir} && chown factory: ${dir}`,
      };
    }
    note = ' (does not exist yet; created at first start)';
  } else {
    const probeFile = path.join(dir, `.doctor-${process.pid}`);
    try {
      writeFileSync(probeFile, 'probe');
      unlinkSync(probeFile);
    } catch (err) {
      return {
        name,
        level: 'fail',
        message: `${dir} is not writable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        fix: `chown -R factory: ${dir} (run the doctor as the service user)`,
      };
    }
    const pid = lockHolder(dir);
    if (pid) note = ` (in use by the running Factory process ${pid})`;
  }
  let free: number;
  try {
    const s = statfsSync(target);
    free = Number(s.bavail) * Number(s.bsize);
  } catch (err) {
    return { name, level: 'warn', message: `${dir}: could not read free space (${(err as Error).message})` };
  }
  const freeText = `${(free / GB).toFixed(1)} GB free`;
  if (free < MIN_FREE_BYTES) {
    return {
      name,
      level: 'warn',
      message: `${dir}: only ${freeText}${note}`,
      fix: 'free disk space: clones, worktrees and logs grow with every task (remove old data/worktrees, vacuum the database)',
    };
  }
  return { name, level: 'ok', message: `${dir} writable, ${freeText}${note}` };
}

/** Compares the database's schema version with what this build knows, without writing to it. */
export async function checkDatabase(config: Config): Promise<CheckResult> {
  if (config.database.dialect === 'postgres') return checkPostgres(config);
  const file = config.database.url;
  const known = Math.max(0, ...listMigrations('sqlite').map((m) => m.version));
  if (!existsSync(file))
    return { name: 'database', level: 'ok', message: `${file} does not exist yet; schema ${known} is created at first start` };
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
    const current = hasTable ? ((db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0) : 0;
    return schemaResult(current, known, '');
  } catch (err) {
    return {
      name: 'database',
      level: 'warn',
      message: `could not read ${file}: ${(err as Error).message}`,
      fix: 'run the doctor as the service user; check the file with sqlite3',
    };
  } finally {
    db?.close();
  }
}

function schemaResult(current: number, known: number, where: string): CheckResult {
  if (current > known) {
    return {
      name: 'database',
      level: 'fail',
      message: `${where}schema version ${current} is newer than this Factory build knows (${known}); it will refuse to start`,
      fix: 'upgrade Factory to the version that wrote this database, or restore a backup taken before the upgrade',
    };
  }
  if (current < known) {
    return {
      name: 'database',
      level: 'ok',
      message: `${where}schema version ${current}; ${known - current} migration(s) will be applied at the next start (or run "factory migrate")`,
    };
  }
  return { name: 'database', level: 'ok', message: `${where}schema version ${current} (up to date)` };
}

/** PostgreSQL: connects (without migrating) and reads schema_migrations; only describe (no password) is shown. */
async function checkPostgres(config: Config): Promise<CheckResult> {
  const { url, describe } = config.database;
  const known = Math.max(0, ...listMigrations('postgres').map((m) => m.version));
  let db: Db | undefined;
  try {
    db = await openDb(url, { migrate: false, statementTimeoutMs: 5_000, applicationName: 'factory doctor' });
    // schemaVersion would create schema_migrations on a new database: look first, change nothing.
    const hasTable = (await db.get<{ t: boolean }>("SELECT to_regclass('schema_migrations') IS NOT NULL AS t"))!.t;
    const current = hasTable ? await schemaVersion(db) : 0;
    if (!hasTable)
      return { name: 'database', level: 'ok', message: `${describe}: reachable, empty; schema ${known} is created at first start` };
    return schemaResult(current, known, `${describe}: `);
  } catch (err) {
    return {
      name: 'database',
      level: 'fail',
      message: `cannot use ${describe}: ${(err as Error).message}`,
      fix: 'check database.url / FACTORY_DATABASE_URL (host, port, user, password, database name) and that PostgreSQL accepts connections from this host',
    };
  } finally {
    await db?.close();
  }
}

export function checkPrompts(config: Config): CheckResult {
  const missing = AGENT_TYPES.filter((t) => !existsSync(config.agent_templates[t].system_prompt_file));
  if (missing.length === 0) return { name: 'prompts', level: 'ok', message: `system prompts found for ${AGENT_TYPES.join(', ')}` };
  const first = missing[0]!;
  return {
    name: 'prompts',
    level: 'fail',
    message: `system prompt file missing for ${missing.join(', ')} (e.g. ${config.agent_templates[first].system_prompt_file})`,
    fix: `restore the prompts/ folder or set agent_templates.${first}.system_prompt_file in config.yml`,
  };
}

/** A local clone_base (directory of bare repositories) must exist; URLs are checked when used. */
export function checkCloneBase(config: Config): CheckResult | undefined {
  const base = config.github.clone_base;
  if (/^(https?|ssh|git):\/\//.test(base) || /^[\w.-]+@[\w.-]+:/.test(base)) return undefined;
  const dir = base.startsWith('file://') ? new URL(base).pathname : path.resolve(config.rootDir, base);
  return existsSync(dir)
    ? { name: 'clone_base', level: 'ok', message: `local repositories under ${dir}` }
    : {
        name: 'clone_base',
        level: 'fail',
        message: `github.clone_base ${dir} does not exist`,
        fix: 'create it or set github.clone_base to https://github.com',
      };
}

export async function checkDocker(config: Config): Promise<CheckResult> {
  const cmd = config.docker.command;
  const out = await runCommand(cmd, ['version', '--format', '{{.Server.Version}}'], config.baseEnv, 10_000);
  if (out.ok) return { name: 'docker', level: 'ok', message: `docker server ${firstLine(out.stdout)} (preview environments available)` };
  if (out.code === 'ENOENT') {
    return {
      name: 'docker',
      level: 'warn',
      message: `"${cmd}" not found: test and preview environments are unavailable (optional)`,
      fix: 'install Docker if agents should run previews; everything else works without it',
    };
  }
  const why = out.code === 'timeout' ? 'no answer within 10 s' : firstLine(out.stderr) || String(out.code);
  return {
    name: 'docker',
    level: 'warn',
    message: `docker daemon not usable: ${why} (preview environments unavailable)`,
    fix: 'start Docker (systemctl start docker) and add the service user to the docker group',
  };
}
