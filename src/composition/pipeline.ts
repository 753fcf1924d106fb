// Builds the task pipeline's stages and the executor that runs them, from the parts the root made.
import type { Config } from '../config.js';
import type { Workspace } from '../git/workspace.js';
import type { GitHubClient } from '../integrations/github.js';
import type { AgentSandbox } from '../agents/sandbox/index.js';
import type { PendingPullRequests } from '../prloop/pending-pr.js';
import { TaskExecutor } from '../orchestrator/executor.js';
import { WorkspaceStage } from '../orchestrator/prepare.js';
import { PromptStage } from '../orchestrator/prompt-stage.js';
import { AgentStage } from '../orchestrator/agent-stage.js';
import { OutcomeStage } from '../orchestrator/outcome.js';
import { PullRequestPublisher } from '../orchestrator/publish.js';
import type { RepoSpecOf } from '../orchestrator/repo-specs.js';
import type { WorktreeCleaner } from '../orchestrator/worktree.js';
import type { FinisherFor, PromptSource, RunRecorder, SystemPromptFor } from '../orchestrator/types.js';
import type { Core } from './core.js';

export interface PipelineParts {
  workspace: Workspace;
  github: GitHubClient;
  sandbox: AgentSandbox;
  pendingPrs: Pick<PendingPullRequests, 'defer'>;
  repoSpec: RepoSpecOf;
  cleaner: WorktreeCleaner;
  /** Prompt sections, in order (after the revision text and the clarification history). */
  promptSources: PromptSource[];
  /** Told of every run, in order. */
  recorders: RunRecorder[];
  systemPromptFor: SystemPromptFor;
  finisherFor: FinisherFor;
}

export function buildExecutor(core: Core, p: PipelineParts): TaskExecutor {
  const { config, logger } = core;
  const log = logger.child({ component: 'executor' });
  return new TaskExecutor({
    logger: log,
    logs: core.repos.logs,
    bus: core.bus,
    workspace: p.workspace,
    prepare: new WorkspaceStage({
      workspace: p.workspace,
      tasks: core.tasks,
      repoSpec: p.repoSpec,
      branchPrefix: config.git.branch_prefix,
      unreachableRetryMs: config.queue.unreachable_retry_minutes * 60_000,
      checkpoints: checkpointMs(core) > 0,
    }),
    prompt: new PromptStage({ logger: log, sources: p.promptSources, sharedSessionStore: config.agent.shared_session_store }),
    agent: new AgentStage({
      config,
      logger: log,
      tasks: core.tasks,
      runs: core.repos.runs,
      bus: core.bus,
      workspace: p.workspace,
      sandbox: p.sandbox,
      baseEnv: config.baseEnv,
      // A worker's agents talk to their own worker (same API, same database): preview environments then
      // start on the host that has the worktree and the Docker daemon. Elsewhere: public_url, or here.
      apiUrl: config.role === 'worker' ? localUrl(config) : config.public_url || localUrl(config),
      taskToken: (id) => core.taskTokens.issue(id),
      systemPromptFor: p.systemPromptFor,
    }),
    outcome: new OutcomeStage({
      config,
      logger: log,
      tasks: core.tasks,
      runs: core.repos.runs,
      bus: core.bus,
      workspace: p.workspace,
      cleaner: p.cleaner,
      publisher: new PullRequestPublisher({ workspace: p.workspace, github: p.github, pendingPrs: p.pendingPrs }),
      finisherFor: p.finisherFor,
      recorders: p.recorders,
    }),
    checkpointMs: checkpointMs(core),
  });
}

/** Only several workers need checkpoints: alone, the worktree stays on this host's disk. */
function checkpointMs(core: Core): number {
  return core.db.dialect === 'postgres' ? core.config.agent.checkpoint_seconds * 1000 : 0;
}

/** This process's own address for its agents: loopback unless the server listens on one address only. */
function localUrl(config: Config): string {
  const h = config.server.host;
  const host = ['0.0.0.0', '::', '127.0.0.1', 'localhost', '::1', ''].includes(h) ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h;
  return `http://${host}:${config.server.port}`;
}
