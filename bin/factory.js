#!/usr/bin/env node
// The `factory` operator command. Plain JavaScript so it works right after `npm ci`, without a build:
// it runs the TypeScript CLI in src/cli through tsx, and falls back to the compiled dist/cli when
// the sources or tsx are not there (for example an installation that ships only dist/).
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(realpathSync(fileURLToPath(import.meta.url))), '..');
const source = path.join(root, 'src', 'cli', 'main.ts');
const compiled = path.join(root, 'dist', 'cli', 'main.js');

function hasTsx() {
  return existsSync(path.join(root, 'node_modules', 'tsx', 'package.json'));
}

async function loadCli() {
  // A production install (npm prune --omit=dev) has the sources but not tsx: it runs dist/ quietly.
  if (existsSync(source) && (hasTsx() || !existsSync(compiled))) {
    try {
      const { register } = await import('tsx/esm/api');
      register();
      return await import(pathToFileURL(source).href);
    } catch (err) {
      if (!existsSync(compiled)) throw err;
      process.stderr.write(`factory: could not load the TypeScript sources (${err.message}); using dist/\n`);
    }
  }
  if (existsSync(compiled)) return import(pathToFileURL(compiled).href);
  throw new Error(`neither ${source} nor ${compiled} exists; run npm ci (and npm run build) in ${root}`);
}

try {
  const cli = await loadCli();
  const code = await cli.runCli(process.argv.slice(2));
  // `serve` returns undefined: the server keeps the process alive and exits on its own.
  if (code !== undefined) cli.exitWith(code);
} catch (err) {
  process.stderr.write(`factory: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
