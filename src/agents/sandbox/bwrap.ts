// The bubblewrap command line for one agent run. Pure: the caller says what exists.
//
// The agent sees the whole filesystem read-only (its toolchain), a private /tmp, its own worktree
// read-write, and the clone cache's object and ref stores read-write (git worktrees commit there)
// with the cache's config, hooks and info files read-only. Factory's data directory (database,
// other worktrees), config, .env and the usual home secrets are replaced by empty mounts. It has
// its own PID namespace (killing bwrap kills everything inside, tools that left the process group
// included) and its own network namespace whose only ways out are the egress sockets.

/** Where the egress sockets appear inside the sandbox. */
export const SANDBOX_SOCKET_DIR = '/tmp/.factory-egress';
/** The port the in-sandbox HTTP proxy listens on (loopback of the sandbox's own network namespace). */
export const SANDBOX_PROXY_PORT = 18_080;

export interface SandboxPolicy {
  worktree: string;
  /** The clone cache (bare repository) the worktree belongs to. */
  cache: string;
  /**
   * Host paths under /tmp the agent must still see (Factory's own files, the agent command): the
   * private /tmp would hide them, so they are mounted back read-only, before anything is hidden.
   */
  visibleInTmp: string[];
  /** Directories and files replaced by empty mounts (only existing ones may be passed). */
  hiddenDirs: string[];
  hiddenFiles: string[];
  /** Extra paths mounted read-write (the agent CLI's state directory…); must exist. */
  writable: string[];
  /** Host directory with proxy.sock and api.sock. */
  egressDir: string;
  /** The port Factory's API is reached on inside the sandbox (relayed to api.sock), or null. */
  apiPort: number | null;
}

/** The cache files an agent must not change: other tasks' git commands read them. */
export const CACHE_READ_ONLY = ['config', 'hooks', 'info', 'packed-refs'];

export function bwrapArgs(p: SandboxPolicy, existsInCache: (name: string) => boolean): string[] {
  const args = [
    '--die-with-parent',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-net',
    '--unshare-cgroup-try',
    '--ro-bind',
    '/',
    '/',
    '--dev',
    '/dev',
    '--proc',
    '/proc',
    '--tmpfs',
    '/tmp',
  ];
  for (const d of p.visibleInTmp) args.push('--ro-bind', d, d);
  for (const d of p.hiddenDirs) args.push('--tmpfs', d);
  for (const f of p.hiddenFiles) args.push('--ro-bind', '/dev/null', f);
  args.push('--bind', p.cache, p.cache);
  for (const name of CACHE_READ_ONLY) {
    if (existsInCache(name)) args.push('--ro-bind', `${p.cache}/${name}`, `${p.cache}/${name}`);
  }
  args.push('--bind', p.worktree, p.worktree);
  for (const w of p.writable) args.push('--bind', w, w);
  args.push('--bind', p.egressDir, SANDBOX_SOCKET_DIR, '--chdir', p.worktree);
  return args;
}

/**
 * The shell line run inside the sandbox before the agent: socat bridges the sandbox's loopback
 * ports to the egress sockets, then the agent replaces the shell (`exec "$@"`).
 */
export function launcherScript(apiPort: number | null): string {
  const bridge = (port: number, sock: string) =>
    `socat TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:${SANDBOX_SOCKET_DIR}/${sock} &`;
  const lines = [bridge(SANDBOX_PROXY_PORT, 'proxy.sock')];
  if (apiPort) lines.push(bridge(apiPort, 'api.sock'));
  // Wait (bounded) until the proxy port answers, so the agent's first request cannot race socat.
  lines.push(
    `i=0; while [ $i -lt 50 ] && ! (echo > /dev/tcp/127.0.0.1/${SANDBOX_PROXY_PORT}) 2>/dev/null; do i=$((i+1)); sleep 0.02; done`,
  );
  lines.push('exec "$@"');
  return lines.join('\n');
}
