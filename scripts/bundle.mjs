// Builds the service into one ES module (dist/bundle/main.js, with a few chunks for what loads on
// demand). Node 20 spends most of a boot resolving and linking hundreds of small module files; one
// bundle boots in about half the time. Packages that are native, that only an optional integration
// needs (imported on demand, and a test checks that an unconfigured one never loads), or that start
// worker threads from their own files (pino's transports) stay in node_modules.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeStamp } from './bundle-stamp.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const EXTERNAL = ['better-sqlite3', '@surrealdb/node', 'surrealdb', 'pg', 'openai', 'node-telegram-bot-api', 'pino', 'pino-pretty'];

/** Bundles src/main.ts into `outdir` (default dist/bundle). */
export async function bundle(outdir = path.join(ROOT, 'dist', 'bundle')) {
  // Chunk names carry a content hash: without this, every build would leave the previous ones behind.
  rmSync(outdir, { recursive: true, force: true });
  await build({
    absWorkingDir: ROOT,
    entryPoints: ['src/main.ts'],
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: EXTERNAL,
    sourcemap: true,
    logLevel: 'warning',
    // The CommonJS packages inside the bundle call require() for Node's own modules.
    banner: { js: "import { createRequire as __factoryRequire } from 'node:module'; const require = __factoryRequire(import.meta.url);" },
  });
  writeStamp(outdir);
  return path.join(outdir, 'main.js');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await bundle(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
}
