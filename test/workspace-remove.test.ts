// Worktree removal does not fail silently: what git could not remove is an error that says what is left.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRepoSpec } from '../src/git/repo-spec.js';
import { gitOut, localWorkspace, makeOrigin } from './agent-harness.js';
import { tempDir } from './helpers.js';

function setup() {
  const dir = tempDir('factory-wt-');
  const origins = path.join(dir, 'origins');
  makeOrigin(origins, 'acme', 'web');
  const ws = localWorkspace(dir);
  return { ws, spec: parseRepoSpec('acme/web', { repos: {}, defaultOrg: '', cloneBase: origins }) };
}

describe('worktree removal', () => {
  it('removes the worktree, its registration and its branch', async () => {
    const { ws, spec } = setup();
    await ws.sync(spec);
    const wt = await ws.prepare(spec, 'task-1', 'factory/1-x', 'main');
    await ws.remove(spec, 'task-1', 'factory/1-x');
    expect(existsSync(wt.path)).toBe(false);
    const cache = ws.cachePath(spec);
    expect(gitOut(cache, 'worktree', 'list', '--porcelain')).not.toContain(wt.path);
    expect(gitOut(cache, 'branch', '--list', 'factory/1-x')).toBe('');
  });

  it('says what is left when git refuses (a locked worktree keeps its registration and its branch)', async () => {
    const { ws, spec } = setup();
    await ws.sync(spec);
    const wt = await ws.prepare(spec, 'task-2', 'factory/2-y', 'main');
    gitOut(ws.cachePath(spec), 'worktree', 'lock', '--reason', 'test', wt.path);
    await expect(ws.remove(spec, 'task-2', 'factory/2-y')).rejects.toThrow(/still registered.*branch factory\/2-y still exists.*locked/);
  });
});
