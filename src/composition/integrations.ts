// Builds agent execution, workflows, the board and the integrations on top of the core, each once,
// in dependency order, every dependency handed to a constructor. The agent pipeline is built last:
// its prompt sections, run recorders and step finisher come from the parts built before it.
import type { Core } from './core.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { RoutePlugin } from '../server/app.js';
import { Workspace } from '../git/workspace.js';
import { GitHubClient } from '../integrations/github.js';
import type { TaskExecutor } from '../orchestrator/executor.js';
import { repoSpecsFrom } from '../orchestrator/repo-specs.js';
import { WorktreeCleaner } from '../orchestrator/worktree.js';
import type { PromptSource, RunRecorder } from '../orchestrator/types.js';
import { HandoffsRepo, WorkflowsRepo } from '../db/repositories/workflows.js';
import { WorkflowEngine } from '../workflows/engine.js';
import { WorkflowSteps } from '../workflows/steps.js';
import { validateWorkflow } from '../workflows/definition.js';
import { buildHandoff } from '../workflows/handoff.js';
import { revisionPromptSource } from '../workflows/revision.js';
import { createBoard, createOutbox, type Board, type BoardOptions } from '../board/index.js';
import type { MessagesRepo } from '../db/repositories/messages.js';
import { PendingPullRequests } from '../prloop/pending-pr.js';
import { PrLoop } from '../prloop/service.js';
import { PrWatchRepo } from '../db/repositories/pr-watch.js';
import { ClarificationService } from '../orchestrator/clarify.js';
import { PlaneSync } from '../integrations/plane-sync.js';
import { Notifications } from '../integrations/notifications.js';
import { SeenRepo } from '../db/repositories/seen.js';
import { attachMemory, createMemoryFromConfig } from '../memory/wiring.js';
import type { MemoryStore } from '../memory/types.js';
import { createEnvironments, type EnvironmentManager } from '../docker/index.js';
import { AgentSandbox, sandboxHealth } from '../agents/sandbox/index.js';
import { TriggerGate } from '../auth/triggers.js';
import { coerceError } from '../errors.js';
import { buildExecutor } from './pipeline.js';
import { integrationRoutes } from './routes.js';

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

export async function buildIntegrations(core: Core, opts: WireOptions = {}): Promise<Wired> {
  const { config, logger, lifecycle } = core;
  const { workspace, github, sandbox, outbox, pendingPrs, repoSpec, cleaner } = await buildFoundation(core, opts);

  // Workflow definitions are checked at startup: a bad one stops the service with a clear message.
  for (const [name, def] of Object.entries(config.workflows)) validateWorkflow(name, def);
  const workflows = new WorkflowsRepo(core.db);
  const handoffs = new HandoffsRepo(core.db);
  const engine = new WorkflowEngine({
    config,
    logger: logger.child({ component: 'workflows' }),
    workflows,
    handoffs,
    tasks: core.tasks,
    queue: core.running,
    repoSpec,
    workspace,
    github,
    bus: core.bus,
    stream: core.stream,
  });
  const steps = new WorkflowSteps({ config, workflows, handoffs, workspace });
  // Reconciliation re-drives workflows after a restart; with several processes only the api (or all) one does it.
  if (core.runsSingletons) lifecycle.add({ start: () => engine.reconcile() });

  const board = createBoard(core, opts.board, outbox);
  const { seen, gate, clarify, plane, notifications } = buildConversations(core, board, (task) =>
    cleaner.remove(repoSpec(task.repo), task),
  );

  const prLoop = new PrLoop({
    config,
    logger: logger.child({ component: 'pr-loop' }),
    tasks: core.tasks,
    queue: core.running,
    bus: core.bus,
    github,
    watches: new PrWatchRepo(core.db),
    seen,
    outbox: board.outbox,
    board: board.board,
    repoSpec,
    cleaner,
    workspace,
    gate,
  });
  lifecycle.add({ start: () => (core.runsSingletons ? prLoop.start() : undefined), stop: () => prLoop.stop() });

  const memory = createMemoryFromConfig(config, logger.child({ component: 'memory' }), opts.memoryUrl);
  const remembering = attachMemory({ memory, outbox, maxPromptChars: config.memory.max_prompt_chars, logger });
  lifecycle.health('memory', () => memory.health());
  // Opened in the background once the port is bound: /health says "starting" meanwhile, and a task
  // that recalls or stores memories waits for it (init() never throws; a failure degrades health).
  lifecycle.add({ start: () => void memory.init(), stop: () => memory.close() });

  const executor = buildExecutor(core, {
    workspace,
    github,
    sandbox,
    pendingPrs,
    repoSpec,
    cleaner,
    promptSources: [
      (task) => steps.promptFor(task),
      revisionPromptSource({ tasks: core.tasks, handoffs }),
      boardMessagesSource(board.messages),
      ...remembering.promptSources,
    ],
    recorders: [standaloneHandoff(handoffs), prLoop.recordRun, ...remembering.recorders],
    systemPromptFor: (task) => steps.systemPromptFor(task),
    finisherFor: steps.finisherFor,
  });

  const environments = createEnvironments({ core, github, repoSpec });
  const parts = { engine, workflows, handoffs, board, clarify, plane, memory, prLoop, environments };
  return { routes: integrationRoutes(core, parts), executor, ...parts, notifications, workspace, github };
}

/** What the rest stands on: git, GitHub, the agent sandbox, the outbox and the worktree cleaner. */
async function buildFoundation(core: Core, opts: WireOptions) {
  const { config, logger, lifecycle } = core;
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
  const sandbox = new AgentSandbox({ config, logger: logger.child({ component: 'sandbox' }) });
  await sandbox.init();
  lifecycle.health('sandbox', () => sandboxHealth(sandbox.status()));
  const outbox = createOutbox(core, opts.board?.outbox);
  const pendingPrs = new PendingPullRequests({ outbox, github, tasks: core.tasks, logger: logger.child({ component: 'pending-pr' }) });
  const repoSpec = repoSpecsFrom(config);
  const cleaner = new WorktreeCleaner({ workspace, tasks: core.tasks, logger: logger.child({ component: 'executor' }) });

  return { workspace, github, sandbox, outbox, pendingPrs, repoSpec, cleaner };
}

/** Who may trigger work, questions and answers, Plane and the notifications that tell people. */
function buildConversations(core: Core, board: Board, cleanup: (task: TaskRow) => Promise<void>) {
  const { config, logger, lifecycle } = core;
  const seen = new SeenRepo(core.db);
  const gate = triggerGate(core, board);
  lifecycle.health('triggers', () => gate.health());
  const clarify = new ClarificationService({
    config,
    logger: logger.child({ component: 'clarify' }),
    tasks: core.tasks,
    queue: core.running,
    bus: core.bus,
    cleanup,
  });
  const plane = new PlaneSync({
    config,
    logger: logger.child({ component: 'plane' }),
    tasks: core.tasks,
    queue: core.running,
    bus: core.bus,
    outbox: board.outbox,
    seen,
    clarify,
    gate,
  });
  const notifications = new Notifications({
    config,
    logger: logger.child({ component: 'notify' }),
    bus: core.bus,
    tasks: core.tasks,
    board: board.board,
    telegram: board.telegram,
    clarify,
    kv: core.repos.kv,
    seen,
    gate,
  });
  lifecycle.add({
    // Pollers and timers exist once per installation: in the api (or all) process.
    start: () => {
      if (!core.runsSingletons) return;
      clarify.start();
      plane.start();
      notifications.startReplies();
    },
    stop: () => {
      clarify.stop();
      plane.stop();
      return notifications.stop();
    },
  });

  return { seen, gate, clarify, plane, notifications };
}

/** Who may start work from Plane, GitHub and Telegram; refusals are announced on the board. */
function triggerGate(core: Core, board: Board): TriggerGate {
  const { config, logger } = core;
  return new TriggerGate({
    logger: logger.child({ component: 'triggers' }),
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
        .catch((err: unknown) => logger.warn({ err: coerceError(err) }, 'board notice not posted'));
    },
  });
}

/** Inter-agent messages: what earlier steps of a workflow addressed to this agent type reaches its prompt. */
function boardMessagesSource(messages: MessagesRepo): PromptSource {
  return async (task) => {
    if (!task.workflow_id) return undefined;
    const msgs = (await messages.list({ workflow_id: task.workflow_id, recipient: task.agent_type, limit: 20 })).reverse();
    if (!msgs.length) return undefined;
    const lines = msgs.map((m) => `- [${m.message_type}] from ${m.sender}: ${m.message.slice(0, 1000)}`);
    return `## Messages addressed to you (${task.agent_type}) by earlier steps\n\n${lines.join('\n')}`;
  };
}

/** Standalone tasks keep their handoff too: revisions, PR follow-ups and people read it later. */
function standaloneHandoff(handoffs: HandoffsRepo): RunRecorder {
  return async (r) => {
    if (r.task.workflow_id || r.status === 'queued' || r.status === 'waiting_for_input') return;
    await handoffs.create({
      from_task_id: r.task.id,
      to_task_id: null,
      workflow_id: null,
      ...buildHandoff(r.task.agent_type, r.handoff, r.finalText, r.changedFiles, r.status === 'failed'),
    });
  };
}
