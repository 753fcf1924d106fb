// npm start: runs the bundled service (dist/bundle/main.js), building it first when it is missing or
// older than a source file. The check and the import happen in this one process, so a start costs one
// Node boot. An installation without dev dependencies (npm ci --omit=dev) has no bundler: it runs the
// bundle it has, and says so when the sources changed after it was built.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stampMatches } from './bundle-stamp.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BUNDLE = path.join(ROOT, 'dist', 'bundle', 'main.js');

/** The newest modification time of any file under `dir` (0 when it does not exist). */
function newestMtime(dir) {
  if (!existsSync(dir)) return 0;
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    newest = Math.max(newest, statSync(path.join(entry.parentPath ?? entry.path, entry.name)).mtimeMs);
  }
  return newest;
}

async function loadBundler() {
  try {
    return await import(pathToFileURL(path.join(ROOT, 'scripts', 'bundle.mjs')).href);
  } catch {
    return null; // esbuild is a dev dependency
  }
}

const fresh = existsSync(BUNDLE) && statSync(BUNDLE).mtimeMs >= newestMtime(path.join(ROOT, 'src')) && stampMatches(path.dirname(BUNDLE));
if (!fresh) {
  const bundler = await loadBundler();
  if (bundler) {
    process.stderr.write(
      existsSync(BUNDLE) ? 'factory: sources changed, rebuilding dist/bundle\n' : 'factory: building dist/bundle (first start)\n',
    );
    await bundler.bundle();
  } else if (existsSync(BUNDLE)) {
    process.stderr.write(
      'factory: src/ or package-lock.json changed after dist/bundle was built and esbuild is not installed: running the older build\n',
    );
  } else {
    process.stderr.write('factory: dist/bundle/main.js is missing and esbuild is not installed: run npm ci, then npm start\n');
    process.exit(1);
  }
}
await import(pathToFileURL(BUNDLE).href);
