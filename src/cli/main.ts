// The operator CLI: `factory serve | doctor | config | migrate | migrate-db | version | help`.
// bin/factory.js loads this file (through tsx from src/, or compiled from dist/) and calls runCli().
import { parseOptions } from './args.js';
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_ROOT } from '../paths.js';
import { ConfigError } from '../config.js';
import { SchemaTooNewError } from '../db/connection.js';
import { scrub } from '../secrets.js';
import { VERSION } from '../version.js';
import { doctor } from './doctor.js';
import { migrateCommand } from './migrate.js';
import { migrateDbCommand } from './migrate-db.js';
import { showConfig } from './show-config.js';

const USAGE = `Usage: factory <command> [options]

Commands:
  serve [--role all|api|worker]
                   run the Factory server in the foreground (same as node dist/main.js); --role sets
                   FACTORY_ROLE: all (default), api or worker (api and worker need PostgreSQL)
  doctor           check configuration, tools, tokens and services; exit code 1 when something fails
  config [--json]  print the effective configuration with secrets masked
  migrate          apply pending database migrations and print the schema version
  migrate-db --from <db> --to <db> [--batch N]
                   copy every row of one Factory database into a new, empty one, e.g.
                   --from sqlite:data/factory.db --to postgres://factory@db-host/factory
                   (stop the service first; the target must be empty)
  version          print the Factory version
  help             show this text

The configuration is ./config.yml (or $FACTORY_CONFIG) plus .env next to it. When the current
directory has no config.yml, the commands run from the installation directory (${PACKAGE_ROOT}).
Run them as the service user, e.g.: sudo -u factory factory doctor
Reference: docs/operations.md and docs/configuration.md`;

const out = (line: string) => {
  process.stdout.write(`${line}\n`);
};
const err = (line: string) => {
  process.stderr.write(`${line}\n`);
};

/** Runs one command. Resolves to an exit code, or undefined for `serve` (the server owns the process). */
export async function runCli(argv: string[]): Promise<number | undefined> {
  const [command = 'help', ...rest] = argv;
  // Paths given on the command line mean what they mean where the operator typed them.
  const invocationDir = process.cwd();
  // Same working directory as the systemd unit, so relative paths in config.yml mean the same thing.
  if (!existsSync('config.yml') && existsSync(path.join(PACKAGE_ROOT, 'config.yml'))) process.chdir(PACKAGE_ROOT);
  try {
    switch (command) {
      case 'serve': {
        const role = serveRole(rest);
        if (role instanceof Error) return usageError('serve', role.message);
        // The config reads FACTORY_ROLE when ../main.js loads it.
        if (role) process.env.FACTORY_ROLE = role;
        await import('../main.js');
        return undefined;
      }
      case 'doctor':
        return await doctor(out);
      case 'config': {
        const o = parseOptions(rest, { json: { type: 'boolean' } });
        if (typeof o === 'string') return usageError('config', o);
        return showConfig(out, o.json ? 'json' : 'yaml');
      }
      case 'migrate': {
        const o = parseOptions(rest, { 'as-root': { type: 'boolean' } });
        if (typeof o === 'string') return usageError('migrate', o);
        return await migrateCommand(out, { asRoot: o['as-root'] === true });
      }
      case 'migrate-db':
        return await migrateDbCommand(rest, { out, err, cwd: invocationDir });
      case 'version':
      case '--version':
      case '-v':
        out(`factory ${VERSION} (node ${process.versions.node})`);
        return 0;
      case 'help':
      case '--help':
      case '-h':
        out(USAGE);
        return 0;
      default:
        err(`factory: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      err(`factory: ${e.message}`);
      return 78;
    }
    if (e instanceof SchemaTooNewError) {
      err(`factory: ${e.message}`);
      return 1;
    }
    err(`factory ${command}: ${scrub(e instanceof Error ? e.message : String(e))}`);
    return 1;
  }
}

function usageError(command: string, message: string): number {
  err(`factory ${command}: ${message}\n\n${USAGE}`);
  return 2;
}

const ROLES = ['all', 'api', 'worker'] as const;

/** The value of `--role X` / `--role=X` (undefined without it), or an Error for anything else. */
function serveRole(args: string[]): (typeof ROLES)[number] | undefined | Error {
  const parsed = parseOptions(args, { role: { type: 'string' } });
  if (typeof parsed === 'string') return new Error(parsed);
  const role = parsed.role as string | undefined;
  if (role === undefined) return undefined;
  return (ROLES as readonly string[]).includes(role)
    ? (role as (typeof ROLES)[number])
    : new Error(`--role must be all, api or worker, not "${role}"`);
}

/** Ends the process once stdout has drained (pipes may be asynchronous). */
export function exitWith(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

// Also runnable directly: node dist/cli/main.js doctor
const invokedDirectly = (() => {
  try {
    return process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
})();
if (invokedDirectly) {
  void runCli(process.argv.slice(2)).then((code) => {
    if (code !== undefined) exitWith(code);
  });
}
