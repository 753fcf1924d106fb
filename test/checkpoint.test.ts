// WIP checkpoints: pushed from a worktree the agent is working in without touching it, and
// restored on another host (another Workspace) from the hidden ref.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { wipRef } from '../src/git/workspace.js';
import { gitOut, localOrigin, localWorkspace } from './agent-harness.js';

describe('WIP checkpoints', () => {
  it('pushes the working state to a hidden ref without touching the worktree, and another host starts from it', async () => {
    const { dir, bare, spec } = localOrigin('factory-cp-');
    const a = localWorkspace(path.join(dir, 'a'));
    await a.sync(spec);
    const wt = await a.prepare(spec, 'task-7', 'factory/7-x', 'main');
    const head = gitOut(wt.path, 'rev-parse', 'HEAD').trim();
    writeFileSync(path.join(wt.path, 'NEW.md'), 'work in progress\n');
    writeFileSync(path.join(wt.path, 'README.md'), '# changed\n');

    const cp = (await a.pushCheckpoint(spec, wt.path, 7))!;
    expect(cp.commit).toMatch(/^[0-9a-f]{40}$/);
    // The agent's checkout is as it was: same HEAD, nothing staged, the edits still uncommitted.
    expect(gitOut(wt.path, 'rev-parse', 'HEAD').trim()).toBe(head);
    expect(gitOut(wt.path, 'diff', '--cached', '--name-only').trim()).toBe('');
    expect(gitOut(wt.path, 'diff', '--name-only').trim()).toBe('README.md');
    expect(gitOut(wt.path, 'ls-files', '--others', '--exclude-standard').trim()).toBe('NEW.md');
    expect(gitOut(bare, 'rev-parse', wipRef(7)).trim()).toBe(cp.commit);
    expect(gitOut(bare, 'for-each-ref', '--format=%(refname)', 'refs/heads')).not.toContain('wip');
    // Nothing changed since: nothing pushed.
    expect(await a.pushCheckpoint(spec, wt.path, 7, cp.tree)).toBeUndefined();

    const b = localWorkspace(path.join(dir, 'b'));
    await b.sync(spec);
    const fetched = (await b.fetchCheckpoint(spec, 7))!;
    expect(fetched.commit).toBe(cp.commit);
    expect(fetched.origin).toBe(a.checkpointOrigin(wt.path));
    expect(fetched.origin).not.toBe(b.checkpointOrigin(b.worktreePath('task-7')));
    const wtB = await b.prepare(spec, 'task-7', 'factory/7-x', 'main', fetched.commit);
    expect(readFileSync(path.join(wtB.path, 'NEW.md'), 'utf8')).toBe('work in progress\n');
    expect(readFileSync(path.join(wtB.path, 'README.md'), 'utf8')).toBe('# changed\n');
    expect(gitOut(wtB.path, 'rev-parse', 'HEAD~1').trim()).toBe(head);

    expect(await b.fetchCheckpoint(spec, 8)).toBeUndefined();
    await b.dropCheckpoint(spec, 7);
    expect(gitOut(bare, 'for-each-ref', wipRef(7))).toBe('');
    expect(await a.fetchCheckpoint(spec, 7)).toBeUndefined();
  });
});
