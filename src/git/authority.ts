// Authenticated git commands (fetch, push, ls-remote) never run in a repository the agent can
// write to. The worktree's config, hooks and filters, and the clone cache's config that every
// worktree shares, are all agent-writable; any of them (pushurl, insteadOf, include.path,
// credential.helper, core.sshCommand, http.proxy, a pre-push hook) could turn a push into a token
// leak. So each authenticated command runs against a throwaway git directory that Factory writes
// for that one command, reading and writing only the clone cache's objects (GIT_OBJECT_DIRECTORY),
// with hooks, fsmonitor and helpers off and the user's global config ignored. Git has no option
// that skips the repository's own config, hence this small hand-written directory.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Config of every authority directory: nothing in it can run a program or redirect a URL. */
const AUTHORITY_CONFIG = `[core]
\trepositoryformatversion = 0
\tbare = true
\thooksPath = /dev/null
\tfsmonitor = false
\t# Alternates of the object store are not asked for their refs (that would run git inside them).
\talternateRefsCommand = true
[credential]
\thelper =
[gc]
\tauto = 0
[maintenance]
\tauto = false
[fetch]
\twriteCommitGraph = false
`;

export interface AuthorityDir {
  /** The git directory to pass as GIT_DIR. */
  gitDir: string;
  remove(): void;
}

/**
 * Writes a fresh git directory under `root`. `refs` ("<sha> <refname>" lines) seed it so a fetch
 * negotiates from what the cache already has instead of downloading everything again.
 * `alternateObjects`: an object store this directory may read (the cache's).
 */
export function createAuthorityDir(root: string, refs = '', alternateObjects?: string): AuthorityDir {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const gitDir = mkdtempSync(path.join(root, 'auth-'));
  mkdirSync(path.join(gitDir, 'refs'));
  mkdirSync(path.join(gitDir, 'objects', 'info'), { recursive: true });
  // A local fetch from this directory back into the cache (after an authenticated fetch) reads the
  // cache's objects through this.
  if (alternateObjects) writeFileSync(path.join(gitDir, 'objects', 'info', 'alternates'), `${alternateObjects}\n`);
  writeFileSync(path.join(gitDir, 'HEAD'), 'ref: refs/heads/main\n');
  writeFileSync(path.join(gitDir, 'config'), AUTHORITY_CONFIG);
  if (refs.trim()) writeFileSync(path.join(gitDir, 'packed-refs'), refs.endsWith('\n') ? refs : `${refs}\n`);
  return { gitDir, remove: () => rmSync(gitDir, { recursive: true, force: true }) };
}

/** Config entries (as GIT_CONFIG_KEY_n / VALUE_n) that every Factory git command carries. */
export const SAFE_COMMAND_CONFIG: ReadonlyArray<readonly [string, string]> = [
  // Agent-installed hooks (post-checkout, post-commit…) and an fsmonitor command never run as Factory.
  ['core.hooksPath', '/dev/null'],
  ['core.fsmonitor', 'false'],
];

/** Turns config entries into git's environment form (same precedence as `git -c`). */
export function configEnv(entries: ReadonlyArray<readonly [string, string]>): Record<string, string> {
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(entries.length) };
  entries.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k;
    env[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  return env;
}
