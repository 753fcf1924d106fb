// Scrubs secrets out of any text before it leaves Factory: logs, the API, stored rows, and every
// message to GitHub, Plane, Telegram, the memory store and the board. Two kinds are removed: the
// values configured for this install (and the encodings git and HTTP put them in), and anything
// shaped like a well-known credential, configured here or not (an agent may print a token it found).
const known = new Set<string>();
/** Each known secret as it reads inside a JSON string (JSON.stringify's escapes), for `mightHoldSecret`. */
const knownInJson = new Set<string>();

export const REDACTED = '[REDACTED]';

export function registerSecrets(values: Iterable<string>): void {
  for (const v of values) {
    if (!v || v.length < 6) continue;
    // The forms a token takes in an HTTP Authorization header (git's extraHeader uses Basic).
    for (const form of [v, Buffer.from(v).toString('base64'), Buffer.from(`x-access-token:${v}`).toString('base64')]) {
      known.add(form);
      knownInJson.add(JSON.stringify(form).slice(1, -1));
    }
  }
}

/**
 * Credential shapes, each linear-time (bounded classes, no nested quantifiers). Sources: the
 * providers' documented prefixes (GitHub ghp_/gho_/ghu_/ghs_/ghr_/github_pat_, Anthropic sk-ant-,
 * OpenAI sk-/sk-proj-, Slack xox?-, Telegram <bot id>:<35 chars>) and PEM private key blocks.
 */
const has = (literal: string) => (text: string) => text.includes(literal);

/**
 * Six digits right before a ':', as in a Telegram bot token. JSON has ':' everywhere and a digit
 * before one in every timestamp, six digits before one rarely; walking the colons is cheaper than
 * the regex over every position (a third of the secret check of a 100-task answer).
 */
function sixDigitsBeforeColon(text: string): boolean {
  for (let i = text.indexOf(':', 6); i !== -1; i = text.indexOf(':', i + 1)) {
    let k = 1;
    while (k <= 6 && isDigit(text.charCodeAt(i - k))) k++;
    if (k > 6) return true;
  }
  return false;
}

const isDigit = (c: number) => c >= 48 && c <= 57;

const TOKEN_SHAPES: Array<[needle: (text: string) => boolean, shape: RegExp, inJson: RegExp]> = [
  // The needle is a cheap test every match passes, in the text and in its JSON form (needles hold
  // no character JSON escapes): most text skips the regex entirely. `inJson` is
  // what mightHoldSecret looks for in a JSON text: the shape without its word boundaries and at its
  // shortest, so every text the shape matches contains a match of it, also once JSON-escaped (token
  // characters are never escaped, but the character before a token may become an escape ending in
  // a letter, as \n does). A needle does not start with a character its own text may repeat: V8
  // searches "xox" through a run of x at every position (300 ms for 50 MiB), "ox" skips to each o.
  [has('gh'), /\bgh[pousr]_[A-Za-z0-9]{30,255}\b/g, /gh[pousr]_[A-Za-z0-9]{30}/],
  [has('github_pat_'), /\bgithub_pat_[A-Za-z0-9_]{40,255}\b/g, /github_pat_[A-Za-z0-9_]{40}/],
  [has('sk-'), /\bsk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,255}/g, /sk-[A-Za-z0-9_-]{20}/],
  [has('ox'), /\bxox[abprs]-[A-Za-z0-9-]{10,255}/g, /xox[abprs]-[A-Za-z0-9-]{10}/],
  [sixDigitsBeforeColon, /\b\d{6,12}:[A-Za-z0-9_-]{35}\b/g, /\d{6}:[A-Za-z0-9_-]{35}/],
  [has('ftk_'), /\bftk_\d{1,15}_[0-9a-f]{40}\b/g, /ftk_\d{1,15}_[0-9a-f]{40}/],
  [
    has('PRIVATE KEY-----'),
    /-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----[\s\S]{0,20000}?-----END (?:[A-Z0-9]+ )?PRIVATE KEY-----/g,
    /PRIVATE KEY-----/,
  ],
];

export function scrub(text: string): string {
  let out = text;
  for (const secret of known) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  for (const [needle, shape] of TOKEN_SHAPES) if (needle(out)) out = out.replace(shape, REDACTED);
  // Credentials embedded in URLs (https://user:token@host) never leave the process either. The scheme is
  // anchored at a word start and the check is skipped without "://", so long lines stay linear.
  if (!out.includes('://')) return out;
  return out.replace(/\b([A-Za-z][A-Za-z0-9+.-]{0,30}:\/\/)[^\s/@:]{1,256}:[^\s/@]{1,512}@/g, `$1${REDACTED}@`);
}

/**
 * A URL with credentials, JSON-escaped: user and password hold no '/' nor '@' (escaped or not) and
 * are at most 769 characters, each at most 6 once escaped (\u0000).
 */
const URL_CREDENTIALS_IN_JSON = /:\/\/[^/@]{3,4620}@/;

/**
 * Whether a JSON text might hold a string that `scrub` would change. Never false when one does (the
 * `inJson` patterns and the URL check over-approximate), so `false` lets a whole answer go out
 * without walking it; `true` only means: walk it with scrubDeep. One pass of a few searches instead
 * of a copy of every object.
 */
export function mightHoldSecret(json: string): boolean {
  for (const secret of knownInJson) if (json.includes(secret)) return true;
  for (const [needle, , inJson] of TOKEN_SHAPES) if (needle(json) && inJson.test(json)) return true;
  return json.includes('://') && URL_CREDENTIALS_IN_JSON.test(json);
}

/** `scrub` applied to every string inside a JSON-like value (objects and arrays are copied). */
export function scrubDeep<T>(value: T): T {
  if (typeof value === 'string') return scrub(value) as T;
  if (Array.isArray(value)) return value.map((v) => scrubDeep(v)) as T;
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = scrubDeep(v);
    return out as T;
  }
  return value;
}
