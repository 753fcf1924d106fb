// Doctor checks of outside services: GitHub, Plane, Telegram, SurrealDB, and the API token.
// Tokens go into request headers (or Telegram's path) only; no result message ever contains one.
import path from 'node:path';
import type { Config } from '../config.js';
import type { CheckResult } from './checks-local.js';
import { field, probe } from './http-probe.js';

const TIMEOUT_MS = 10_000;
const trimSlash = (u: string) => u.replace(/\/+$/, '');

export async function checkGitHub(config: Config): Promise<CheckResult> {
  const name = 'github';
  const token = config.secrets.githubToken;
  if (!token) {
    return {
      name,
      level: 'warn',
      message: 'GITHUB_TOKEN is not set: private repositories cannot be cloned or pushed and no pull request is opened',
      fix: 'create a token with the repo scope (or a fine-grained token with Contents and Pull requests: read and write) and set GITHUB_TOKEN in .env',
    };
  }
  const api = trimSlash(config.github.api_url);
  const res = await probe(
    `${api}/user`,
    {
      accept: 'application/vnd.github+json',
      'x-github-api-version': '2022-11-28',
      authorization: `Bearer ${token}`,
    },
    TIMEOUT_MS,
  );
  if (!res.ok)
    return {
      name,
      level: 'fail',
      message: `cannot reach ${api}: ${res.reason}`,
      fix: 'check network access to the GitHub API (proxy settings, firewall) and github.api_url',
    };
  if (res.status === 401) {
    return {
      name,
      level: 'fail',
      message: 'GitHub token rejected (401 Bad credentials): GITHUB_TOKEN is wrong, expired or revoked',
      fix: 'create a new token and put it in GITHUB_TOKEN in .env, then restart Factory',
    };
  }
  if (res.status === 403) {
    return {
      name,
      level: 'fail',
      message: `GitHub refused the token (403: ${field(res.body, 'message') ?? 'forbidden'})`,
      fix: 'check the token is not blocked by an organisation policy (SSO authorisation) or rate limited',
    };
  }
  if (res.status !== 200)
    return {
      name,
      level: 'fail',
      message: `GET ${api}/user answered ${res.status}`,
      fix: 'check github.api_url points at the GitHub REST API',
    };
  const login = field(res.body, 'login') ?? 'unknown user';
  const header = res.headers.get('x-oauth-scopes');
  if (header === null) {
    return {
      name,
      level: 'ok',
      message: `token of ${login}; fine-grained token or app token: scopes cannot be read, make sure it has Contents and Pull requests read/write on your repositories`,
    };
  }
  const scopes = header
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (scopes.includes('repo')) return { name, level: 'ok', message: `token of ${login}, scopes: ${scopes.join(', ')}` };
  if (scopes.includes('public_repo')) {
    return {
      name,
      level: 'warn',
      message: `token of ${login} has public_repo only: private repositories will fail`,
      fix: 'give the token the repo scope if agents work on private repositories',
    };
  }
  return {
    name,
    level: 'fail',
    message: `token of ${login} lacks the repo scope (scopes: ${scopes.join(', ') || 'none'}): pushing and opening pull requests will fail`,
    fix: 'create a token with the repo scope and set GITHUB_TOKEN',
  };
}

export async function checkPlane(config: Config): Promise<CheckResult> {
  const name = 'plane';
  const p = config.plane;
  if (!p.base_url) return { name, level: 'ok', message: 'not configured (optional)' };
  const key = config.secrets.planeApiKey;
  if (!key)
    return {
      name,
      level: 'fail',
      message: 'plane.base_url is set but PLANE_API_KEY is not',
      fix: 'create an API token in Plane (profile settings → API tokens) and set PLANE_API_KEY in .env',
    };
  const base = trimSlash(p.base_url);
  const res = await probe(`${base}/api/v1/users/me/`, { 'x-api-key': key, accept: 'application/json' }, TIMEOUT_MS);
  if (!res.ok)
    return { name, level: 'fail', message: `cannot reach ${base}: ${res.reason}`, fix: 'check plane.base_url and network access to Plane' };
  if (res.status === 401 || res.status === 403)
    return {
      name,
      level: 'fail',
      message: `Plane rejected PLANE_API_KEY (${res.status})`,
      fix: 'create a new API token in Plane and set PLANE_API_KEY',
    };
  if (res.status !== 200)
    return {
      name,
      level: 'fail',
      message: `GET ${base}/api/v1/users/me/ answered ${res.status}`,
      fix: 'check plane.base_url (the address of the Plane web app, without /api)',
    };
  const who = field(res.body, 'display_name') ?? field(res.body, 'email') ?? 'API user';
  const missing = (['workspace_slug', 'project_id'] as const).filter((k) => !p[k]);
  if (missing.length)
    return {
      name,
      level: 'warn',
      message: `reachable as ${who}, but plane.${missing.join(' and plane.')} not set`,
      fix: 'set them in config.yml so Factory can update issues',
    };
  if (!config.secrets.planeWebhookSecret) {
    return {
      name,
      level: 'warn',
      message: `reachable as ${who}; PLANE_WEBHOOK_SECRET is not set, so webhook calls are accepted unsigned`,
      fix: 'copy the webhook secret Plane shows into PLANE_WEBHOOK_SECRET',
    };
  }
  return { name, level: 'ok', message: `reachable as ${who}, workspace ${p.workspace_slug}` };
}

export async function checkTelegram(config: Config): Promise<CheckResult> {
  const name = 'telegram';
  const token = config.secrets.telegramBotToken;
  if (!token) return { name, level: 'ok', message: 'not configured (optional)' };
  const root = trimSlash(config.telegram.api_root);
  const res = await probe(`${root}/bot${token}/getMe`, {}, TIMEOUT_MS);
  if (!res.ok)
    return {
      name,
      level: 'fail',
      message: `cannot reach ${root}: ${res.reason}`,
      fix: 'check network access to the Telegram Bot API (proxy, firewall) and telegram.api_root',
    };
  if (res.status === 401 || res.status === 404)
    return {
      name,
      level: 'fail',
      message: `Telegram rejected TELEGRAM_BOT_TOKEN (${res.status})`,
      fix: 'ask @BotFather for the token of your bot and set TELEGRAM_BOT_TOKEN',
    };
  if (res.status !== 200)
    return { name, level: 'fail', message: `getMe answered ${res.status}`, fix: 'try again later; check telegram.api_root' };
  const bot = field(res.body, 'result', 'username') ?? 'bot';
  if (!config.telegram.chat_id) {
    return {
      name,
      level: 'warn',
      message: `token valid for @${bot}, but telegram.chat_id is empty: nothing can be sent`,
      fix: 'send the bot a message, read the chat id from getUpdates and set telegram.chat_id',
    };
  }
  return { name, level: 'ok', message: `token valid for @${bot}, chat ${config.telegram.chat_id}` };
}

export async function checkMemory(config: Config): Promise<CheckResult> {
  const name = 'memory';
  if (!config.memory.enabled) return { name, level: 'ok', message: 'disabled (memory.enabled: false)' };
  const search = config.secrets.openaiApiKey ? 'vector + BM25 search' : 'BM25 search only (set OPENAI_API_KEY for vectors)';
  let target: { backend: string; url: string; display: string };
  try {
    // Loading this module also loads the embedded engine's native binding: a useful check on its own.
    const { resolveTarget } = await import('../memory/surreal-connect.js');
    target = resolveTarget(config.secrets.surrealUrl, config.data_dir);
  } catch (err) {
    return {
      name,
      level: 'warn',
      message: `memory store unusable: ${(err as Error).message.split('\n')[0]}; tasks still run without memory`,
      fix: 'reinstall dependencies (npm ci) or set SURREALDB_URL to a SurrealDB server',
    };
  }
  if (target.backend === 'embedded') {
    return { name, level: 'ok', message: `embedded store ${target.display.replace(/^surrealkv:\/\//, '') || target.display}, ${search}` };
  }
  const u = new URL(target.url);
  const origin = `${u.protocol === 'wss:' || u.protocol === 'https:' ? 'https:' : 'http:'}//${u.host}`;
  const res = await probe(`${origin}/health`, {}, 5000);
  if (!res.ok || res.status !== 200) {
    const why = res.ok ? `answered ${res.status}` : res.reason;
    return {
      name,
      level: 'fail',
      message: `SurrealDB at ${target.display} not reachable: ${why}`,
      fix: 'start the SurrealDB server, or unset SURREALDB_URL and memory.url to use the embedded store',
    };
  }
  if (!config.secrets.surrealUser || !config.secrets.surrealPass) {
    return {
      name,
      level: 'warn',
      message: `SurrealDB at ${target.display} is up; SURREALDB_USER/SURREALDB_PASS not set`,
      fix: 'set the credentials of the SurrealDB root or database user',
    };
  }
  return { name, level: 'ok', message: `SurrealDB at ${target.display} is up, ${search}` };
}

export function checkAuth(config: Config): CheckResult {
  const name = 'auth';
  const { host, port, hostForced } = config.server;
  const token = config.secrets.authToken;
  if (!token) {
    return {
      name,
      level: 'warn',
      message: `FACTORY_AUTH_TOKEN is not set: the API is open${hostForced ? ` (requested host ignored)` : ''} and only listens on ${host}:${port}`,
      fix: 'set FACTORY_AUTH_TOKEN (e.g. openssl rand -hex 32) before putting a reverse proxy in front',
    };
  }
  if (token.length < 16)
    return {
      name,
      level: 'warn',
      message: 'FACTORY_AUTH_TOKEN is shorter than 16 characters',
      fix: 'use a long random token: openssl rand -hex 32',
    };
  return { name, level: 'ok', message: `bearer token required on /api, listening on ${host}:${port}` };
}

/** Where the configuration came from, for the first line of the report. */
export function configSource(config: Config): string {
  return config.configPath ? config.configPath : `no config file (defaults, relative to ${path.resolve(config.rootDir)})`;
}
