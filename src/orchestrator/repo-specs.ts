// How a task's `repo` field becomes a clone URL, owner and name, from the configured repositories.
import type { Config } from '../config.js';
import { parseRepoSpec, type RepoSpec } from '../git/repo-spec.js';

export type RepoSpecOf = (repo: string) => RepoSpec;

export function repoSpecsFrom(c: Pick<Config, 'repos' | 'default_org' | 'github'>): RepoSpecOf {
  return (repo) => parseRepoSpec(repo, { repos: c.repos, defaultOrg: c.default_org, cloneBase: c.github.clone_base });
}
