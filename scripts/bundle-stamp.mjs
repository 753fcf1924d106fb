// What a bundle was built from besides src/: the locked dependency versions, by content (npm touches
// the file's time on prune). bundle.mjs writes the stamp; start.mjs compares it without the bundler.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function lockDigest() {
  return createHash('sha256')
    .update(readFileSync(path.join(ROOT, 'package-lock.json')))
    .digest('hex');
}

export function writeStamp(outdir) {
  writeFileSync(path.join(outdir, 'stamp.json'), JSON.stringify({ lock: lockDigest() }));
}

/** True when the bundle in `outdir` was built from the current package-lock.json. */
export function stampMatches(outdir) {
  try {
    return JSON.parse(readFileSync(path.join(outdir, 'stamp.json'), 'utf8')).lock === lockDigest();
  } catch {
    return false;
  }
}
