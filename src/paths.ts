// Where Factory's own files are. The service runs from src/ (tsx), from dist/ (tsc's output, one file
// per module) or from the bundle in dist/bundle/, so a path relative to one module's location is
// wrong in another layout; everything is found from the package root instead.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nearest directory above this module that holds package.json. */
function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(from, '..');
  }
}

/** The installed package: home of the default prompts, static/ and bin/. */
export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

/** The dashboard's and the board's files. */
export const STATIC_DIR = path.join(PACKAGE_ROOT, 'static');

/** The SQL migrations: in src/ when the sources are there, else the copy the build puts in dist/. */
export const MIGRATIONS_DIR =
  [path.join(PACKAGE_ROOT, 'src', 'db', 'migrations'), path.join(PACKAGE_ROOT, 'dist', 'db', 'migrations')].find((dir) =>
    existsSync(dir),
  ) ?? path.join(PACKAGE_ROOT, 'src', 'db', 'migrations');
