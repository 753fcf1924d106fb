// What a failed git command means for a task: gone, forbidden, or only out of reach for now.
import { scrub } from '../secrets.js';

export class RepoNotFoundError extends Error {
  override name = 'RepoNotFoundError';
}
export class GitError extends Error {
  override name = 'GitError';
}
/** The git host could not be reached (DNS, refused, timeout, 5xx): worth waiting for, not a verdict. */
export class GitUnreachableError extends GitError {
  override name = 'GitUnreachableError';
}

const UNREACHABLE =
  /could not resolve host|connection refused|failed to connect|couldn't connect|timed out|connection reset|network is unreachable|no route to host|returned error: 5\d\d|HTTP 5\d\d|early EOF|unexpected disconnect|the remote end hung up/i;
const NO_ACCESS = /authentication failed|returned error: 40[13]|permission denied|could not read username/i;

/** The last `n` lines of a git error, scrubbed of secrets, on one line. */
export function lastLines(message: string, n = 5): string {
  return scrub(message).trim().split('\n').slice(-n).join(' | ');
}

/** A git failure talking to a remote, named for what it means. */
export function remoteFailure(url: string, raw: string): Error {
  const why = lastLines(raw, 3);
  if (UNREACHABLE.test(raw)) return new GitUnreachableError(`cannot reach the git host of ${scrub(url)} (${why})`);
  if (NO_ACCESS.test(raw)) return new RepoNotFoundError(`repository ${scrub(url)} exists but the token has no access to it (${why})`);
  return new RepoNotFoundError(`repository ${scrub(url)} does not exist or is not accessible (${why})`);
}

/** The fetch asked for a branch the remote does not have (deleted or renamed). */
export function isMissingRemoteRef(err: unknown): boolean {
  return /couldn't find remote ref/i.test((err as Error)?.message ?? '');
}
