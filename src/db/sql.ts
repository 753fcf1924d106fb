// The database interface the rest of Factory sees, whatever the engine underneath.
//
// Repositories get an AsyncDb (query.ts): promises, SQL with SQLite-style parameters shared by both
// engines, transactions on one connection. The Db that openDb returns adds what only the owner of
// the connections needs: multi-statement scripts (migrations), where the data lives, and closing.

import type { AsyncDb } from './query.js';

export type { Dialect, RunResult } from './query.js';

export interface Db extends AsyncDb {
  /** Where the data lives, for messages; never carries a password. */
  readonly describe: string;
  /** Ends every connection; queries still running fail. */
  close(): Promise<void>;
}
