// What the HTTP layer may use of the process: the core services and the /health parts. Routes are
// given this, never the composition root's whole object, and never a repository or the database.
import type { Core } from '../composition/core.js';

export interface AppServices extends Omit<Core, 'repos' | 'db'> {
  /** Every /health field besides the counts: the event loop and each part's own. */
  health(): Promise<Record<string, unknown>>;
}
