// Turns the `repo` field of a task into a clone URL. Pure: no I/O.

export interface RepoConfigEntry {
  url: string;
  default_agent?: string;
  default_branch?: string;
  network_allow?: string[];
}

export interface RepoSpec {
  /** Stable identifier used for locks and cache folders: "owner/name". */
  slug: string;
  owner: string;
  name: string;
  cloneUrl: string;
  /** Pre-configured in `repos`: skips the existence check. */
  configured: boolean;
  defaultAgent?: string;
  defaultBranch?: string;
  /** Extra hosts a sandboxed agent on this repository may reach (configured repos only). */
  networkAllow?: string[];
}

export class RepoSpecError extends Error {
  override name = 'RepoSpecError';
}

const PART = /^[A-Za-z0-9_.-]+$/;

function checkPart(part: string, what: string, input: string): void {
  if (!PART.test(part) || part.includes('..') || part === '.' || part.startsWith('-')) {
    throw new RepoSpecError(`invalid repo "${input}": ${what} may contain only letters, digits, ".", "_" and "-" (no "..")`);
  }
}

export function parseRepoSpec(
  input: string,
  ctx: { repos: Record<string, RepoConfigEntry>; defaultOrg: string; cloneBase: string },
): RepoSpec {
  const spec = input.trim();
  if (!spec) throw new RepoSpecError('repo is empty');
  const entry = Object.hasOwn(ctx.repos, spec) ? ctx.repos[spec] : undefined;
  if (entry) {
    const [owner, name] = ownerAndNameFromUrl(entry.url) ?? ['local', spec];
    return {
      slug: `${owner}/${name}`,
      owner,
      name,
      cloneUrl: entry.url,
      configured: true,
      defaultAgent: entry.default_agent,
      defaultBranch: entry.default_branch,
      networkAllow: entry.network_allow,
    };
  }
  if (spec.length > 200 || /[\s:\\]/.test(spec) || spec.startsWith('/') || spec.includes('//')) {
    throw new RepoSpecError(`invalid repo "${input}": use a configured repo key, "owner/name" or a short name`);
  }
  const parts = spec.replace(/\.git$/, '').split('/');
  let owner: string;
  let name: string;
  if (parts.length === 2) {
    [owner, name] = parts as [string, string];
    checkPart(owner, 'the owner', input);
  } else if (parts.length === 1) {
    name = parts[0]!;
    if (!ctx.defaultOrg) throw new RepoSpecError(`unknown repo "${input}": it is not in the repos config and no default_org is set`);
    owner = ctx.defaultOrg;
  } else {
    throw new RepoSpecError(`invalid repo "${input}": expected "owner/name"`);
  }
  checkPart(name, 'the name', input);
  return { slug: `${owner}/${name}`, owner, name, cloneUrl: joinCloneUrl(ctx.cloneBase, owner, name), configured: false };
}

/** `<clone_base>/<owner>/<name>.git`; clone_base may be https://host, file:///dir or a local directory. */
export function joinCloneUrl(base: string, owner: string, name: string): string {
  return `${base.replace(/\/+$/, '')}/${owner}/${name}.git`;
}

/** Reads owner and name from the last two path segments of a clone URL or path. */
export function ownerAndNameFromUrl(url: string): [string, string] | undefined {
  const m = /([^/:]+)[/:]([^/]+?)(?:\.git)?\/?$/.exec(url);
  return m ? [m[1]!, m[2]!] : undefined;
}
