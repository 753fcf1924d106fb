// Scrubs known secret values out of any text before it is logged, stored or returned.
const known = new Set<string>();

export function registerSecrets(values: Iterable<string>): void {
  for (const v of values) if (v && v.length >= 6) known.add(v);
}

export function scrub(text: string): string {
  let out = text;
  for (const secret of known) {
    if (out.includes(secret)) out = out.split(secret).join('[REDACTED]');
  }
  // Credentials embedded in URLs (https://user:token@host) never leave the process either. The scheme is
  // anchored at a word start and the check is skipped without "://", so long lines stay linear.
  if (!out.includes('://')) return out;
  return out.replace(/\b([A-Za-z][A-Za-z0-9+.-]{0,30}:\/\/)[^\s/@:]{1,256}:[^\s/@]{1,512}@/g, '$1[REDACTED]@');
}
