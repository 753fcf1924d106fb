// Table types for Kysely's typed builder. Only the tables queried through the builder are listed;
// the other repositories write plain SQL through AsyncDb (query.ts).
import type { Generated } from 'kysely';

export interface EventsTable {
  id: Generated<number>;
  kind: string;
  task_id: number | null;
  payload: string;
  created_at: string;
}

export interface Tables {
  events: EventsTable;
}
