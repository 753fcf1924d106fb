// Docker test and preview environments, wired onto the core services.
import type { Services } from '../services.js';
import type { RoutePlugin } from '../server/app.js';
import type { GitHubClient } from '../integrations/github.js';
import type { RepoSpec } from '../git/repo-spec.js';
import { EnvironmentsRepo } from '../db/repositories/environments.js';
import { environmentRoutes } from '../server/routes/environments.js';
import { EnvironmentManager, type EnvironmentManagerDeps } from './manager.js';

export { EnvironmentManager } from './manager.js';
export type { UpInput, RemoveResult } from './manager.js';

export interface EnvironmentsDeps {
  services: Services;
  github: GitHubClient;
  repoSpec: (repo: string) => RepoSpec;
  /** Tests: shorter poll intervals and timeouts. */
  timeouts?: EnvironmentManagerDeps['timeouts'];
}

export function createEnvironments(deps: EnvironmentsDeps): { routes: RoutePlugin[]; manager: EnvironmentManager } {
  const s = deps.services;
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
  s.onStart(() => manager.start());
  s.onStop(() => manager.stop());
  s.addHealth('docker', () => manager.health());
  return { routes: [environmentRoutes(manager)], manager };
}
