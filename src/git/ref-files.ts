// Reads refs straight from a git directory's files instead of running `git for-each-ref`, which
// costs a process (~3.5 ms) twice on every task start. For the directories Factory makes: the
// clone cache (a bare clone) and authority directories (authority.ts: created with a packed-refs
// file, then changed by one fetch, which writes a loose ref for each ref it updates and rewrites
// packed-refs when it prunes). Both formats are git's documented files backend (gitrepository-layout,
// git-pack-refs), the only one git 2.39 has; symbolic refs, locks and anything that is not an
// object id are skipped.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

const OBJECT_ID = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

/** Ref → object id for every ref under `namespaces` (e.g. `refs/remotes/origin`); loose refs win. */
export async function readRefFiles(gitDir: string, namespaces: readonly string[]): Promise<Map<string, string>> {
  const inScope = (ref: string) => namespaces.some((ns) => ref.startsWith(`${ns}/`));
  const refs = new Map<string, string>();
  for (const [ref, id] of await packedRefs(gitDir)) if (inScope(ref)) refs.set(ref, id);
  for (const ns of namespaces) {
    for (const [ref, id] of await looseRefs(gitDir, ns)) refs.set(ref, id);
  }
  return refs;
}

/** `<id> <ref>` lines; `#` starts the header, `^` a peeled tag's target (neither is a ref). */
async function packedRefs(gitDir: string): Promise<Array<[string, string]>> {
  const text = await readFile(path.join(gitDir, 'packed-refs'), 'utf8').catch(missingIsEmpty);
  const out: Array<[string, string]> = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#') || line.startsWith('^')) continue;
    const [id, ref] = line.split(' ');
    if (id && ref && OBJECT_ID.test(id)) out.push([ref, id]);
  }
  return out;
}

/** One file per ref under `<gitDir>/<namespace>/`, holding the id; symbolic refs and locks are skipped. */
async function looseRefs(gitDir: string, namespace: string): Promise<Array<[string, string]>> {
  const root = path.join(gitDir, namespace);
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  const out: Array<[string, string]> = [];
  for (const e of entries) {
    if (!e.isFile() || e.name.endsWith('.lock')) continue;
    const file = path.join(e.parentPath ?? e.path, e.name);
    const id = (await readFile(file, 'utf8').catch(missingIsEmpty)).trim();
    if (OBJECT_ID.test(id)) out.push([`${namespace}/${path.relative(root, file).split(path.sep).join('/')}`, id]);
  }
  return out;
}

function missingIsEmpty(err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOENT') return '';
  throw err;
}

/**
 * The commit a worktree's HEAD is at, from its files: `.git` names the worktree's git directory,
 * whose HEAD holds a commit or `ref: refs/heads/…`, a branch of the shared (common) directory, loose
 * or packed. Undefined when anything is not as expected: the caller then asks git.
 */
export async function readWorktreeHead(worktree: string): Promise<string | undefined> {
  const gitDir = /^gitdir: (.+)$/m.exec(await readFile(path.join(worktree, '.git'), 'utf8').catch(() => ''))?.[1];
  if (!gitDir) return undefined;
  const dir = path.resolve(worktree, gitDir.trim());
  const head = (await readFile(path.join(dir, 'HEAD'), 'utf8').catch(() => '')).trim();
  if (OBJECT_ID.test(head)) return head;
  const ref = /^ref: (refs\/heads\/\S+)$/.exec(head)?.[1];
  if (!ref) return undefined;
  const common = path.resolve(dir, (await readFile(path.join(dir, 'commondir'), 'utf8').catch(() => '.')).trim());
  const loose = (await readFile(path.join(common, ref), 'utf8').catch(() => '')).trim();
  if (OBJECT_ID.test(loose)) return loose;
  return (await packedRefs(common)).find(([name]) => name === ref)?.[1];
}
