// Connects the optional parts (agent execution, board, integrations) to the core services.
import type { Services } from './services.js';
import type { RoutePlugin } from './server/app.js';

export interface Wired {
  routes: RoutePlugin[];
}

export async function wireFactory(_services: Services): Promise<Wired> {
  return { routes: [] };
}
