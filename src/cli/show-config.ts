// `factory config`: the effective configuration (file + environment + defaults) with every secret masked.
import { stringify } from 'yaml';
import { loadConfig, secretValues, type Config } from '../config.js';
import { registerSecrets, scrub } from '../secrets.js';

const mask = (v: string) => (v ? 'set' : 'unset');

/** A copy of the config that is safe to print: secrets become "set"/"unset", URLs lose credentials. */
export function maskedConfig(config: Config): Record<string, unknown> {
  const { secrets, baseEnv, ...rest } = config;
  const s = secrets;
  return {
    ...rest,
    // Values of agent.env often carry tokens for the agents: show only which variables exist.
    agent: { ...config.agent, env: Object.fromEntries(Object.keys(config.agent.env).map((k) => [k, mask(config.agent.env[k] ?? '')])) },
    plane: { ...config.plane, api_key: mask(config.plane.api_key) },
    telegram: { ...config.telegram, bot_token: mask(config.telegram.bot_token) },
    memory: { ...config.memory, url: scrub(config.memory.url) },
    // A postgres:// URL may carry the password: print the redacted form (sqlite:<file> otherwise).
    database: { ...config.database, url: config.database.describe },
    environment: {
      ANTHROPIC_API_KEY: mask(s.anthropicApiKey),
      GITHUB_TOKEN: mask(s.githubToken),
      FACTORY_AUTH_TOKEN: mask(s.authToken),
      PLANE_API_KEY: mask(s.planeApiKey),
      PLANE_WEBHOOK_SECRET: mask(s.planeWebhookSecret),
      GITHUB_WEBHOOK_SECRET: mask(s.githubWebhookSecret),
      TELEGRAM_BOT_TOKEN: mask(s.telegramBotToken),
      // The URL is not secret once credentials embedded in it are removed.
      SURREALDB_URL: s.surrealUrl ? scrub(s.surrealUrl) : 'unset',
      SURREALDB_USER: mask(s.surrealUser),
      SURREALDB_PASS: mask(s.surrealPass),
      OPENAI_API_KEY: mask(s.openaiApiKey),
    },
    inherited_environment: Object.fromEntries(Object.entries(baseEnv).map(([k, v]) => [k, scrub(v)])),
  };
}

export function showConfig(print: (text: string) => void, format: 'yaml' | 'json'): number {
  const config = loadConfig();
  registerSecrets(secretValues(config));
  const safe = maskedConfig(config);
  const text = format === 'json' ? JSON.stringify(safe, null, 2) : stringify(safe, { lineWidth: 0 });
  print(scrub(text).trimEnd());
  return 0;
}
