// `factory doctor`: checks everything Factory depends on and prints one line per check, with the fix.
import { ConfigError, loadConfig, secretValues, type Config } from '../config.js';
import { registerSecrets, scrub } from '../secrets.js';
import {
  checkAgent,
  checkAnthropic,
  checkCloneBase,
  checkDatabase,
  checkDataDir,
  checkDocker,
  checkGit,
  checkNode,
  checkPrompts,
  type CheckResult,
  type Level,
} from './checks-local.js';
import { checkAuth, checkGitHub, checkMemory, checkPlane, checkTelegram, configSource } from './checks-remote.js';
import pino from 'pino';
import { checkSandbox } from '../agents/sandbox/index.js';

const MARK: Record<Level, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' };

export function formatResult(r: CheckResult): string {
  const fix = r.fix && r.level !== 'ok' ? ` -> fix: ${r.fix}` : '';
  // Every line goes through the scrubber: a secret must never reach the terminal, whatever a check says.
  return scrub(`${MARK[r.level]}  ${r.name.padEnd(10)} ${r.message}${fix}`);
}

/** Every check in a fixed order; remote ones run in parallel. Config must have loaded. */
export async function runChecks(config: Config): Promise<CheckResult[]> {
  const cloneBase = checkCloneBase(config);
  const local: Array<CheckResult | Promise<CheckResult>> = [
    checkNode(),
    checkDataDir(config),
    checkDatabase(config),
    checkGit(config.baseEnv),
    checkAgent(config),
    checkAnthropic(config),
    checkPrompts(config),
    ...(cloneBase ? [cloneBase] : []),
    checkGitHub(config),
    checkPlane(config),
    checkTelegram(config),
    checkMemory(config),
    checkDocker(config),
    checkAuth(config),
    checkSandbox(config, pino({ level: 'silent' })),
  ];
  return Promise.all(
    local.map((c) =>
      Promise.resolve(c).catch((err: unknown): CheckResult => ({
        name: 'internal',
        level: 'fail',
        message: `a check crashed: ${err instanceof Error ? err.message : String(err)}`,
      })),
    ),
  );
}

/** Runs the doctor, writing lines through `print`; returns the process exit code (1 when anything failed). */
export async function doctor(print: (line: string) => void): Promise<number> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    const message = err instanceof ConfigError ? err.message : `could not load the configuration: ${(err as Error).message}`;
    const fix =
      err instanceof ConfigError
        ? 'correct config.yml (or the FACTORY_* variable named) as the message says; every key is described in docs/configuration.md'
        : 'run the doctor as the service user (sudo -u factory ...) so it can read config.yml and .env';
    print(formatResult({ name: 'config', level: 'fail', message, fix }));
    // Without a config only the machine itself can be checked.
    print(formatResult(checkNode()));
    print('1 check failed; fix the configuration and run "factory doctor" again');
    return 1;
  }
  registerSecrets(secretValues(config));
  print(formatResult({ name: 'config', level: 'ok', message: `loaded ${configSource(config)}` }));
  const results = await runChecks(config);
  for (const r of results) print(formatResult(r));
  const count = (l: Level) => results.filter((r) => r.level === l).length;
  const failed = count('fail');
  print(`${count('ok') + 1} ok, ${count('warn')} warning(s), ${failed} failed`);
  return failed > 0 ? 1 : 0;
}
