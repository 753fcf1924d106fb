// Table types for the asynchronous query builder (Kysely). Only the tables that moved to the
// asynchronous data layer are listed; the rest follow as their repositories move.
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
