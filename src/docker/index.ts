// Docker test and preview environments, built on the core (routes: server/routes/environments.ts).
import type { Core } from '../composition/core.js';
import type { GitHubClient } from '../integrations/github.js';
import type { RepoSpec } from '../git/repo-spec.js';
import { EnvironmentsRepo } from '../db/repositories/environments.js';
import { EnvironmentManager, type EnvironmentManagerDeps } from './manager.js';

export { EnvironmentManager } from './manager.js';
export type { UpInput, RemoveResult } from './manager.js';

export interface EnvironmentsDeps {
  core: Core;
  github: GitHubClient;
  repoSpec: (repo: string) => RepoSpec;
  /** Tests: shorter poll intervals and timeouts. */
  timeouts?: EnvironmentManagerDeps['timeouts'];
}

export function createEnvironments(deps: EnvironmentsDeps): EnvironmentManager {
  const s = deps.core;
  const manager = new EnvironmentManager({
    config: s.config,
    logger: s.logger.child({ component: 'environments' }),
    tasks: s.tasks,
    bus: s.bus,
    kv: s.repos.kv,
    repo: new EnvironmentsRepo(s.db),
    github: deps.github,
    repoSpec: deps.repoSpec,
    timeouts: deps.timeouts,
  });
  // Test environments go as soon as their task stops working; listeners must not throw.
  s.bus.on('task.status', ({ task }) => manager.onTaskStatus(task));
  s.lifecycle.add({ start: () => manager.start(), stop: () => manager.stop() });
  s.lifecycle.health('docker', () => manager.health());
  return manager;
}
