// Reading an authority directory's refs from its files must say exactly what `git for-each-ref`
// says, after fetches that add, move and prune refs.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAuthorityDir } from '../src/git/authority.js';
import { readRefFiles, readWorktreeHead } from '../src/git/ref-files.js';
import { localOrigin } from './agent-harness.js';
import { tempDir } from './helpers.js';

const NAMESPACES = ['refs/remotes/origin', 'refs/factory'];
const git = (env: Record<string, string>, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=Someone', '-c', 'user.email=someone@example.com', ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });

function forEachRef(gitDir: string): Map<string, string> {
  const out = git({ GIT_DIR: gitDir }, 'for-each-ref', '--format=%(objectname) %(refname)', ...NAMESPACES);
  return new Map(
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [id, ref] = l.split(' ');
        return [ref!, id!] as [string, string];
      }),
  );
}

describe('readRefFiles', () => {
  it('agrees with git for-each-ref after fetches that add, move and prune refs', async () => {
    const { bare } = localOrigin('factory-reffiles-');
    const work = tempDir('factory-reffiles-work-');
    git({}, 'clone', '--quiet', bare, work);
    const push = (branch: string, file: string) => {
      git({}, '-C', work, 'checkout', '--quiet', '-B', branch);
      writeFileSync(path.join(work, file), `${file}\n`);
      git({}, '-C', work, 'add', '.');
      git({}, '-C', work, 'commit', '--quiet', '-m', file);
      git({}, '-C', work, 'push', '--quiet', '--force', 'origin', `${branch}:refs/heads/${branch}`);
    };
    push('feature/a', 'a.txt');
    push('feature/b', 'b.txt');
    const fetchInto = (seed: string) => {
      const dir = createAuthorityDir(tempDir('factory-reffiles-auth-'), seed);
      const refspecs = ['+refs/heads/*:refs/remotes/origin/*', '+HEAD:refs/factory/remote-head'];
      git({ GIT_DIR: dir.gitDir }, 'fetch', '--quiet', '--prune', bare, ...refspecs);
      return dir.gitDir;
    };

    const first = fetchInto('');
    const seen = forEachRef(first);
    expect([...seen.keys()].sort()).toEqual([
      'refs/factory/remote-head',
      'refs/remotes/origin/feature/a',
      'refs/remotes/origin/feature/b',
      'refs/remotes/origin/main',
    ]);
    expect(await readRefFiles(first, NAMESPACES)).toEqual(seen);

    // Seeded with what the first fetch saw (packed-refs, as Factory seeds it): b moves, a is deleted
    // on the remote (pruned), c is new.
    push('feature/b', 'b2.txt');
    push('feature/c', 'c.txt');
    git({}, '-C', work, 'push', '--quiet', 'origin', ':refs/heads/feature/a');
    const seed = [...seen].map(([ref, id]) => `${id} ${ref}`).join('\n');
    const second = fetchInto(seed);
    const now = forEachRef(second);
    expect(now.has('refs/remotes/origin/feature/a')).toBe(false);
    expect(now.get('refs/remotes/origin/feature/b')).not.toBe(seen.get('refs/remotes/origin/feature/b'));
    expect(now.has('refs/remotes/origin/feature/c')).toBe(true);
    expect(await readRefFiles(second, NAMESPACES)).toEqual(now);
  });

  it('agrees with git for-each-ref in a bare clone with packed and loose refs', async () => {
    const { bare } = localOrigin('factory-reffiles-cache-');
    const cache = path.join(tempDir('factory-reffiles-cache-dir-'), 'web.git');
    git({}, 'clone', '--quiet', '--bare', bare, cache);
    const main = git({ GIT_DIR: cache }, 'rev-parse', 'main').trim();
    git({ GIT_DIR: cache }, 'update-ref', 'refs/remotes/origin/main', main);
    git({ GIT_DIR: cache }, 'update-ref', 'refs/factory/wip/7', main);
    git({ GIT_DIR: cache }, 'pack-refs', '--all');
    // Loose after packing: the loose value wins over the packed one.
    git({ GIT_DIR: cache }, 'update-ref', 'refs/remotes/origin/topic/one', main);
    git({ GIT_DIR: cache }, 'symbolic-ref', 'refs/remotes/origin/HEAD', 'refs/remotes/origin/main');
    const want = forEachRef(cache);
    want.delete('refs/remotes/origin/HEAD'); // a symbolic ref: never fetched, never copied
    expect(want.size).toBe(3);
    expect(await readRefFiles(cache, NAMESPACES)).toEqual(want);
  });

  it("reads a worktree's HEAD as git rev-parse does: on a branch (loose or packed), detached, or not at all", async () => {
    const { bare } = localOrigin('factory-reffiles-head-');
    const cache = path.join(tempDir('factory-reffiles-head-cache-'), 'web.git');
    git({}, 'clone', '--quiet', '--bare', bare, cache);
    const wt = path.join(tempDir('factory-reffiles-head-wt-'), 'task-1');
    git({ GIT_DIR: cache }, 'worktree', 'add', '--quiet', '-b', 'factory/1-x', wt, 'main');
    const revParse = () => git({}, '-C', wt, 'rev-parse', 'HEAD').trim();
    writeFileSync(path.join(wt, 'a.txt'), 'a\n');
    git({}, '-C', wt, 'add', '.');
    git({}, '-C', wt, 'commit', '--quiet', '-m', 'a');
    expect(await readWorktreeHead(wt)).toBe(revParse()); // a loose branch ref
    git({ GIT_DIR: cache }, 'pack-refs', '--all');
    expect(await readWorktreeHead(wt)).toBe(revParse()); // the same branch, packed
    git({}, '-C', wt, 'checkout', '--quiet', '--detach', 'HEAD~1');
    expect(await readWorktreeHead(wt)).toBe(revParse()); // detached: the commit is in HEAD itself
    expect(await readWorktreeHead(tempDir('factory-reffiles-not-a-worktree-'))).toBeUndefined();
  });
});
