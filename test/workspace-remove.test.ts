// Worktree removal does not fail silently: what git could not remove is an error that says what is left.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { gitOut, localOrigin, localWorkspace } from './agent-harness.js';

function setup() {
  const { dir, spec } = localOrigin('factory-wt-');
  return { ws: localWorkspace(dir), spec };
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
