// The one place that reads config.yml and the environment. Everything else receives a Config.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { parse as parseYaml } from 'yaml';
import {
  AGENT_TYPES,
  BUILTIN_CODE_REVIEW,
  DEFAULT_TIMEOUTS,
  DEFAULT_TOOLS,
  configSchema,
  type AgentType,
  type Config,
  type FileConfig,
  type ResolvedTemplate,
  type Secrets,
} from './config-schema.js';
import { PACKAGE_ROOT } from './paths.js';

export * from './config-schema.js';

const INHERITED_ENV = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'LANG',
  'LC_ALL',
  'TMPDIR',
  'SHELL',
  'TZ',
  'CLAUDE_CONFIG_DIR',
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'HTTPS_PROXY',
  'HTTP_PROXY',
  'NO_PROXY',
  'https_proxy',
  'http_proxy',
  'no_proxy',
];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface LoadOptions {
  /** Path of config.yml; default $FACTORY_CONFIG or ./config.yml when it exists. */
  configPath?: string;
  /** Environment to read; default process.env. Tests pass their own. */
  env?: Record<string, string | undefined>;
  /** Directory relative paths are resolved against; default the config file's directory or cwd. */
  cwd?: string;
  /** Values merged over the file (tests). */
  overrides?: Record<string, unknown>;
  /** Read a .env file next to the config (default true). */
  dotenv?: boolean;
}

// Loads, merges and validates configuration; throws ConfigError with one line naming the key.
export function loadConfig(opts: LoadOptions = {}): Config {
  const baseEnv = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const configPath =
    opts.configPath || baseEnv.FACTORY_CONFIG || (existsSync(path.join(cwd, 'config.yml')) ? path.join(cwd, 'config.yml') : undefined);
  const rootDir = configPath ? path.dirname(path.resolve(cwd, configPath)) : cwd;

  let env: Record<string, string | undefined> = baseEnv;
  if (opts.dotenv !== false) {
    const dotenvPath = path.join(rootDir, '.env');
    if (existsSync(dotenvPath)) {
      // Real environment wins over .env, as with every dotenv loader.
      env = { ...parseEnv(readFileSync(dotenvPath, 'utf8')), ...baseEnv };
    }
  }

  let raw: unknown = {};
  if (configPath) {
    const full = path.resolve(cwd, configPath);
    if (!existsSync(full)) throw new ConfigError(`config file not found: ${full}`);
    try {
      raw = parseYaml(readFileSync(full, 'utf8')) ?? {};
    } catch (err) {
      throw new ConfigError(`config file ${full} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`config file ${full} must be a YAML mapping`);
  }
  const merged = deepMerge(raw as Record<string, unknown>, opts.overrides ?? {});
  applyEnvOverrides(merged, env);

  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path.join('.') || '(root)';
    throw new ConfigError(`invalid config: ${key}: ${issue.message}`);
  }
  return resolve(parsed.data, env, rootDir, configPath ? path.resolve(cwd, configPath) : null);
}

function applyEnvOverrides(target: Record<string, unknown>, env: Record<string, string | undefined>): void {
  const server = (target.server ??= {}) as Record<string, unknown>;
  if (env.FACTORY_HOST) server.host = env.FACTORY_HOST;
  if (env.FACTORY_PORT !== undefined && env.FACTORY_PORT !== '') {
    const port = Number(env.FACTORY_PORT);
    if (!Number.isInteger(port)) throw new ConfigError(`invalid config: FACTORY_PORT: expected an integer, got "${env.FACTORY_PORT}"`);
    server.port = port;
  }
  if (env.FACTORY_DATA_DIR) target.data_dir = env.FACTORY_DATA_DIR;
  if (env.FACTORY_ROLE) target.role = env.FACTORY_ROLE;
  if (env.FACTORY_DATABASE_URL) ((target.database ??= {}) as Record<string, unknown>).url = env.FACTORY_DATABASE_URL;
  if (env.FACTORY_LOG_LEVEL) target.log_level = env.FACTORY_LOG_LEVEL;
}

function resolve(file: FileConfig, env: Record<string, string | undefined>, rootDir: string, configPath: string | null): Config {
  const abs = (p: string) => path.resolve(rootDir, p);
  const secrets: Secrets = {
    anthropicApiKey: env.ANTHROPIC_API_KEY ?? '',
    githubToken: env.GITHUB_TOKEN ?? '',
    authToken: env.FACTORY_AUTH_TOKEN ?? '',
    planeApiKey: env.PLANE_API_KEY || file.plane.api_key,
    planeWebhookSecret: env.PLANE_WEBHOOK_SECRET ?? '',
    githubWebhookSecret: env.GITHUB_WEBHOOK_SECRET ?? '',
    telegramBotToken: env.TELEGRAM_BOT_TOKEN || file.telegram.bot_token,
    surrealUrl: env.SURREALDB_URL || file.memory.url,
    surrealUser: env.SURREALDB_USER ?? '',
    surrealPass: env.SURREALDB_PASS ?? '',
    openaiApiKey: env.OPENAI_API_KEY ?? '',
    databasePassword: databasePassword(file.database.url),
  };
  // Without a token the API must not be reachable from other hosts.
  const wantedHost = file.server.host ?? (secrets.authToken ? '0.0.0.0' : '127.0.0.1');
  const isLoopback = ['127.0.0.1', 'localhost', '::1'].includes(wantedHost);
  const hostForced = !secrets.authToken && !isLoopback;
  const templates = {} as Record<AgentType, ResolvedTemplate>;
  for (const type of AGENT_TYPES) {
    const t = file.agent_templates[type] ?? {};
    templates[type] = {
      system_prompt_file: t.system_prompt_file ? abs(t.system_prompt_file) : path.join(PACKAGE_ROOT, 'prompts', `${type}.md`),
      allowed_tools: t.allowed_tools ?? DEFAULT_TOOLS[type],
      timeout_minutes: t.timeout_minutes ?? Math.min(DEFAULT_TIMEOUTS[type], file.agent_timeout_minutes),
      network_allow: t.network_allow ?? file.agent.network_allow,
    };
  }
  const dataDir = abs(file.data_dir);
  const dbUrl = file.database.url;
  const postgres = /^postgres(ql)?:\/\//i.test(dbUrl);
  const database = {
    url: postgres ? dbUrl : dbUrl ? abs(dbUrl.replace(/^sqlite:/i, '')) : path.join(dataDir, 'factory.db'),
    dialect: postgres ? ('postgres' as const) : ('sqlite' as const),
    describe: '',
    statement_timeout_seconds: file.database.statement_timeout_seconds,
  };
  database.describe = postgres ? redactDbUrl(dbUrl) : `sqlite:${database.url}`;
  // Split roles share one queue: that needs a database every host can reach.
  if (file.role !== 'all' && !postgres)
    throw new ConfigError(`invalid config: role: "${file.role}" needs database.url = postgres://… (SQLite serves one process only)`);
  if (file.role === 'worker' && !file.public_url)
    throw new ConfigError("invalid config: public_url: a worker needs the API's URL (its agents post messages and read their task there)");
  return {
    ...file,
    database,
    server: { ...file.server, host: hostForced ? '127.0.0.1' : wantedHost, hostForced },
    data_dir: dataDir,
    repos_dir: file.repos_dir ? abs(file.repos_dir) : path.join(dataDir, 'repos'),
    worktrees_dir: file.worktrees_dir ? abs(file.worktrees_dir) : path.join(dataDir, 'worktrees'),
    agent_templates: templates,
    workflows: { code_review: BUILTIN_CODE_REVIEW, ...file.workflows },
    secrets,
    configPath,
    rootDir,
    devLogs: env.NODE_ENV === 'development',
    baseEnv: Object.fromEntries(INHERITED_ENV.filter((k) => env[k]).map((k) => [k, env[k]!])),
  };
}

function databasePassword(url: string): string {
  if (!/^postgres(ql)?:\/\//i.test(url)) return '';
  try {
    const u = new URL(url);
    return decodeURIComponent(u.password) || (u.searchParams.get('password') ?? '');
  } catch {
    return '';
  }
}

/** A database URL with its password masked, for messages and logs. */
export function redactDbUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    if (u.searchParams.has('password')) u.searchParams.set('password', '***');
    return u.toString();
  } catch {
    return 'postgres://(unparsable url)';
  }
}

/** Every secret value currently configured, for log and output scrubbing. */
export function secretValues(config: Config): string[] {
  const { surrealUrl: _url, surrealUser: _user, ...secret } = config.secrets;
  return Object.values(secret).filter((v) => v.length >= 6);
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isPlainObject(prev) && isPlainObject(v) ? deepMerge(prev, v) : v;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
