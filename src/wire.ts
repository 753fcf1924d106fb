// Connects agent execution, the board and the integrations to the core services.
import type { Services } from './services.js';
import type { RoutePlugin } from './server/app.js';
import { Workspace } from './git/workspace.js';
import { GitHubClient } from './integrations/github.js';
import { TaskExecutor } from './orchestrator/executor.js';
import { HandoffsRepo, WorkflowsRepo } from './db/repositories/workflows.js';
import { WorkflowEngine } from './workflows/engine.js';
import { validateWorkflow } from './workflows/definition.js';
import { workflowRoutes } from './server/routes/workflows.js';
import { registerRevisionMode } from './workflows/revision.js';

export interface Wired {
  routes: RoutePlugin[];
  executor: TaskExecutor;
  engine: WorkflowEngine;
  workspace: Workspace;
  github: GitHubClient;
}

export async function wireFactory(s: Services): Promise<Wired> {
  const { config } = s;
  const workspace = new Workspace({
    reposDir: config.repos_dir,
    worktreesDir: config.worktrees_dir,
    githubToken: config.secrets.githubToken,
    authorName: config.git.author_name,
    authorEmail: config.git.author_email,
    baseEnv: config.baseEnv,
  });
  const github = new GitHubClient(config.github.api_url, config.secrets.githubToken);
  const executor = new TaskExecutor({
    config, logger: s.logger.child({ component: 'executor' }), tasks: s.tasks, logs: s.repos.logs, runs: s.repos.runs, bus: s.bus,
    workspace, github, baseEnv: config.baseEnv,
    apiUrl: config.public_url || `http://127.0.0.1:${config.server.port}`,
  });
  s.scheduler.setExecutor(executor.execute);

  // Workflow definitions are checked at startup: a bad one stops the service with a clear message.
  for (const [name, def] of Object.entries(config.workflows)) validateWorkflow(name, def);
  const workflows = new WorkflowsRepo(s.db);
  const handoffs = new HandoffsRepo(s.db);
  const engine = new WorkflowEngine({
    config, logger: s.logger.child({ component: 'workflows' }), workflows, handoffs, tasks: s.tasks, scheduler: s.scheduler,
    executor, workspace, github, bus: s.bus, stream: s.stream,
  });
  registerRevisionMode({ tasks: s.tasks, handoffs, executor, bus: s.bus });
  s.onStart(() => engine.reconcile());
  const routes = [workflowRoutes({ engine, workflows, handoffs })];
  return { routes, executor, engine, workspace, github };
}
