// The HTTP routes of the parts built on the core (the core's own routes are mounted by buildApp).
import type { RoutePlugin } from '../server/app.js';
import type { Core } from './core.js';
import type { WorkflowEngine } from '../workflows/engine.js';
import type { HandoffsRepo, WorkflowsRepo } from '../db/repositories/workflows.js';
import type { Board } from '../board/index.js';
import type { ClarificationService } from '../orchestrator/clarify.js';
import type { PlaneSync } from '../integrations/plane-sync.js';
import type { MemoryStore } from '../memory/types.js';
import type { PrLoop } from '../prloop/service.js';
import type { EnvironmentManager } from '../docker/manager.js';
import { environmentRoutes } from '../server/routes/environments.js';
import { queueRoutes } from '../server/routes/queue.js';
import { workflowRoutes } from '../server/routes/workflows.js';
import { messageRoutes } from '../server/routes/messages.js';
import { clarifyRoutes } from '../server/routes/clarify.js';
import { webhookRoutes } from '../server/routes/webhooks.js';
import { memoryRoutes } from '../server/routes/memory.js';
import { githubWebhookRoutes } from '../server/routes/github-webhook.js';
import { dashboardRoutes } from '../server/routes/dashboard.js';

export interface RoutedParts {
  engine: WorkflowEngine;
  workflows: WorkflowsRepo;
  handoffs: HandoffsRepo;
  board: Board;
  clarify: ClarificationService;
  plane: PlaneSync;
  memory: MemoryStore;
  prLoop: PrLoop;
  environments: EnvironmentManager;
}

export function integrationRoutes(core: Core, p: RoutedParts): RoutePlugin[] {
  return [
    environmentRoutes(p.environments),
    queueRoutes(core.queue),
    workflowRoutes({ engine: p.engine, workflows: p.workflows, handoffs: p.handoffs }),
    messageRoutes(p.board),
    clarifyRoutes(p.clarify),
    webhookRoutes(p.plane),
    memoryRoutes(p.memory),
    githubWebhookRoutes(p.prLoop),
    dashboardRoutes,
  ];
}
