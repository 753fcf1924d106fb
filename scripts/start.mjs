// npm start: runs the bundled service (dist/bundle/main.js), building it first when it is missing or
// older than a source file. The check and the import happen in this one process, so a start costs one
// Node boot. An installation without dev dependencies (npm ci --omit=dev) has no bundler: it runs the
// bundle it has, and says so when the sources changed after it was built.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

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

const built = existsSync(BUNDLE) ? statSync(BUNDLE).mtimeMs : 0;
const sources = Math.max(newestMtime(path.join(ROOT, 'src')), statSync(path.join(ROOT, 'package-lock.json')).mtimeMs);
if (built < sources) {
  const bundler = await loadBundler();
  if (bundler) {
    process.stderr.write(built ? 'factory: sources changed, rebuilding dist/bundle\n' : 'factory: building dist/bundle (first start)\n');
    await bundler.bundle();
  } else if (built) {
    process.stderr.write('factory: src/ is newer than dist/bundle and esbuild is not installed: running the older build\n');
  } else {
    process.stderr.write('factory: dist/bundle/main.js is missing and esbuild is not installed: run npm ci, then npm start\n');
    process.exit(1);
  }
}
await import(pathToFileURL(BUNDLE).href);
