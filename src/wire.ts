// Connects agent execution, the board and the integrations to the core services.
import { coerceError } from './errors.js';
import type { Services } from './services.js';
import type { RoutePlugin } from './server/app.js';
import { Workspace } from './git/workspace.js';
import { GitHubClient } from './integrations/github.js';
import { TaskExecutor } from './orchestrator/executor.js';
import { HandoffsRepo, WorkflowsRepo } from './db/repositories/workflows.js';
import { WorkflowEngine } from './workflows/engine.js';
import { validateWorkflow } from './workflows/definition.js';
import { buildHandoff } from './workflows/handoff.js';
import { workflowRoutes } from './server/routes/workflows.js';
import { registerRevisionPrompt } from './workflows/revision.js';
import { createBoard, createOutbox, type BoardOptions } from './board/index.js';
import { PendingPullRequests } from './prloop/pending-pr.js';
import { ClarificationService } from './orchestrator/clarify.js';
import { clarifyRoutes } from './server/routes/clarify.js';
import { PlaneSync } from './integrations/plane-sync.js';
import { webhookRoutes } from './server/routes/webhooks.js';
import { Notifications } from './integrations/notifications.js';
import { SeenRepo } from './db/repositories/seen.js';
import type { Board } from './board/index.js';
import { attachMemory, createMemoryFromConfig } from './memory/wiring.js';
import { memoryRoutes } from './server/routes/memory.js';
import type { MemoryStore } from './memory/types.js';
import { queueRoutes } from './server/routes/queue.js';
import { PrLoop } from './prloop/service.js';
import { PrWatchRepo } from './db/repositories/pr-watch.js';
import { githubWebhookRoutes } from './server/routes/github-webhook.js';
import { dashboardRoutes } from './server/routes/dashboard.js';
import { createEnvironments, type EnvironmentManager } from './docker/index.js';
import { AgentSandbox, sandboxHealth } from './agents/sandbox/index.js';
import { TriggerGate } from './auth/triggers.js';

export interface Wired {
  routes: RoutePlugin[];
  executor: TaskExecutor;
  engine: WorkflowEngine;
  board: Board;
  plane: PlaneSync;
  clarify: ClarificationService;
  notifications: Notifications;
  memory: MemoryStore;
  prLoop: PrLoop;
  environments: EnvironmentManager;
  workspace: Workspace;
  github: GitHubClient;
}

export interface WireOptions {
  board?: BoardOptions;
  /** Memory store URL instead of the configured one (tests use mem://). */
  memoryUrl?: string;
}

export async function wireFactory(s: Services, opts: WireOptions = {}): Promise<Wired> {
  const { config } = s;
  const workspace = new Workspace({
    reposDir: config.repos_dir,
    worktreesDir: config.worktrees_dir,
    githubToken: config.secrets.githubToken,
    authorName: config.git.author_name,
    authorEmail: config.git.author_email,
    baseEnv: config.baseEnv,
  });
  const github = new GitHubClient(config.github.api_url, config.secrets.githubToken, {
    timeoutMs: config.github.request_timeout_seconds * 1000,
  });
  const sandbox = new AgentSandbox({ config, logger: s.logger.child({ component: 'sandbox' }) });
  await sandbox.init();
  s.addHealth('sandbox', () => sandboxHealth(sandbox.status()));
  const outbox = createOutbox(s, opts.board?.outbox);
  const pendingPrs = new PendingPullRequests({ outbox, github, tasks: s.tasks, logger: s.logger.child({ component: 'pending-pr' }) });
  const executor = new TaskExecutor({
    config,
    logger: s.logger.child({ component: 'executor' }),
    tasks: s.tasks,
    logs: s.repos.logs,
    runs: s.repos.runs,
    bus: s.bus,
    workspace,
    github,
    sandbox,
    pendingPrs,
    baseEnv: config.baseEnv,
    // A worker's agents talk to their own worker (same API, same database): preview environments then
    // start on the host that has the worktree and the Docker daemon. Elsewhere: public_url, or here.
    apiUrl: config.role === 'worker' ? localUrl(config) : config.public_url || localUrl(config),
    taskToken: (id) => s.taskTokens.issue(id),
    // Only several workers need checkpoints: alone, the worktree stays on this host's disk.
    checkpointMs: s.db.dialect === 'postgres' ? config.agent.checkpoint_seconds * 1000 : 0,
  });
  s.scheduler.setExecutor(executor.execute);

  // Workflow definitions are checked at startup: a bad one stops the service with a clear message.
  for (const [name, def] of Object.entries(config.workflows)) validateWorkflow(name, def);
  const workflows = new WorkflowsRepo(s.db);
  const handoffs = new HandoffsRepo(s.db);
  const engine = new WorkflowEngine({
    config,
    logger: s.logger.child({ component: 'workflows' }),
    workflows,
    handoffs,
    tasks: s.tasks,
    scheduler: s.scheduler,
    executor,
    workspace,
    github,
    bus: s.bus,
    stream: s.stream,
  });
  registerRevisionPrompt({ tasks: s.tasks, handoffs, executor });
  // Standalone tasks keep their handoff too: revisions, PR follow-ups and people read it later.
  executor.onRun(async (r) => {
    if (r.task.workflow_id || r.status === 'queued' || r.status === 'waiting_for_input') return;
    await handoffs.create({
      from_task_id: r.task.id,
      to_task_id: null,
      workflow_id: null,
      ...buildHandoff(r.task.agent_type, r.handoff, r.finalText, r.changedFiles, r.status === 'failed'),
    });
  });
  // Reconciliation re-drives workflows after a restart; with several processes only the api (or all) one does it.
  if (s.runsSingletons) s.onStart(() => engine.reconcile());

  const board = createBoard(s, opts.board, outbox);
  executor.onProtocol((task, obj) => {
    if (obj.type === 'message')
      void board.board
        .postFromAgent(task, obj)
        .catch((err: unknown) => s.logger.warn({ err: coerceError(err), taskId: task.id }, 'agent message not posted'));
  });
  // Inter-agent messages: what earlier steps of a workflow addressed to this agent type reaches its prompt.
  executor.addPromptSource(async (task) => {
    if (!task.workflow_id) return undefined;
    const msgs = (await board.messages.list({ workflow_id: task.workflow_id, recipient: task.agent_type, limit: 20 })).reverse();
    if (!msgs.length) return undefined;
    const lines = msgs.map((m) => `- [${m.message_type}] from ${m.sender}: ${m.message.slice(0, 1000)}`);
    return `## Messages addressed to you (${task.agent_type}) by earlier steps\n\n${lines.join('\n')}`;
  });

  const seen = new SeenRepo(s.db);
  const gate = new TriggerGate({
    logger: s.logger.child({ component: 'triggers' }),
    allow: {
      plane: config.plane.allowed_members,
      github: config.pr_loop.allowed_users,
      telegram: config.telegram.allowed_user_ids.map(String),
    },
    enabled: {
      plane: Boolean(config.plane.base_url),
      github: config.pr_loop.enabled && Boolean(config.secrets.githubToken),
      telegram: Boolean(config.secrets.telegramBotToken) && config.telegram.poll_replies,
    },
    announce: (message) => {
      void board.board
        .postSystem({ message_type: 'error', message })
        .catch((err: unknown) => s.logger.warn({ err: coerceError(err) }, 'board notice not posted'));
    },
  });
  s.addHealth('triggers', () => gate.health());
  const clarify = new ClarificationService({
    config,
    logger: s.logger.child({ component: 'clarify' }),
    tasks: s.tasks,
    scheduler: s.scheduler,
    bus: s.bus,
    cleanup: (task) => executor.cleanup(executor.repoSpec(task.repo), task),
  });
  const plane = new PlaneSync({
    config,
    logger: s.logger.child({ component: 'plane' }),
    tasks: s.tasks,
    scheduler: s.scheduler,
    bus: s.bus,
    outbox: board.outbox,
    seen,
    clarify,
    gate,
  });
  executor.onAgentEvent((task, ev) => {
    if (ev.kind === 'text')
      void plane
        .agentOutput(task, ev.text)
        .catch((err: unknown) => s.logger.warn({ err: coerceError(err), taskId: task.id }, 'agent output not sent to Plane'));
  });
  const notifications = new Notifications({
    config,
    logger: s.logger.child({ component: 'notify' }),
    bus: s.bus,
    tasks: s.tasks,
    board: board.board,
    telegram: board.telegram,
    clarify,
    kv: s.repos.kv,
    seen,
    gate,
  });
  // Pollers and timers exist once per installation: in the api (or all) process.
  if (s.runsSingletons)
    s.onStart(() => {
      clarify.start();
      plane.start();
      notifications.startReplies();
    });
  s.onStop(() => {
    clarify.stop();
    plane.stop();
    return notifications.stop();
  });

  const prLoop = new PrLoop({
    config,
    logger: s.logger.child({ component: 'pr-loop' }),
    tasks: s.tasks,
    scheduler: s.scheduler,
    bus: s.bus,
    github,
    watches: new PrWatchRepo(s.db),
    seen,
    outbox: board.outbox,
    board: board.board,
    executor,
    workspace,
    gate,
  });
  if (s.runsSingletons) s.onStart(() => prLoop.start());
  s.onStop(() => prLoop.stop());

  const memory = createMemoryFromConfig(config, s.logger.child({ component: 'memory' }), opts.memoryUrl);
  attachMemory({ memory, executor, outbox, maxPromptChars: config.memory.max_prompt_chars, logger: s.logger });
  s.addHealth('memory', () => memory.health());
  s.onStart(() => memory.init());
  s.onStop(() => memory.close());

  const environments = createEnvironments({ services: s, github, repoSpec: (repo) => executor.repoSpec(repo) });

  const routes = [
    ...environments.routes,
    queueRoutes(s.queue),
    workflowRoutes({ engine, workflows, handoffs }),
    ...board.routes,
    clarifyRoutes(clarify),
    webhookRoutes(plane),
    memoryRoutes(memory),
    githubWebhookRoutes(prLoop),
    dashboardRoutes,
  ];
  return {
    routes,
    executor,
    engine,
    board,
    plane,
    clarify,
    notifications,
    memory,
    prLoop,
    environments: environments.manager,
    workspace,
    github,
  };
}

/** This process's own address for its agents: loopback unless the server listens on one address only. */
function localUrl(config: Services['config']): string {
  const h = config.server.host;
  const host = ['0.0.0.0', '::', '127.0.0.1', 'localhost', '::1', ''].includes(h) ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h;
  return `http://${host}:${config.server.port}`;
}
