/** Public types of the agent memory module. */

export type MemoryKind = 'outcome' | 'learning' | 'gotcha' | 'decision';

export const MEMORY_KINDS: readonly MemoryKind[] = ['outcome', 'learning', 'gotcha', 'decision'];

export interface NewMemory {
  repo: string;
  task_id: number | null;
  agent_type: string;
  kind: MemoryKind;
  title: string;
  content: string;
  tags?: string[];
}

export interface MemoryRecord extends Required<NewMemory> {
  /** Record id as SurrealDB prints it, e.g. "memory:abc". */
  id: string;
  /** ISO 8601 UTC timestamp ending in "Z". */
  created_at: string;
  /** Ranking score of a recall/search hit (higher is better); absent for plain listings. */
  score?: number;
}

export interface RecallQuery {
  repo: string;
  text: string;
  limit?: number;
}

export interface SearchQuery {
  repo?: string;
  q?: string;
  limit?: number;
}

export interface MemoryHealth {
  /** starting: the store is opening (after the port was bound); calls that need it wait for it. */
  status: 'ok' | 'starting' | 'degraded' | 'disabled';
  backend: 'embedded' | 'remote' | 'none';
  error?: string;
  vectors: boolean;
}

export interface MemoryStore {
  /** Connect and apply the idempotent schema. Never throws: on failure health() is degraded and later calls are no-ops. */
  init(): Promise<void>;
  add(m: NewMemory): Promise<MemoryRecord | null>;
  /** Memories relevant to `text`: the same repo first, other repos ranked lower. */
  recall(q: RecallQuery): Promise<MemoryRecord[]>;
  /** For GET /api/memory?repo=&q=&limit= ; without q the newest come first. */
  search(q: SearchQuery): Promise<MemoryRecord[]>;
  /** id as returned ("memory:xyz" or "xyz"); a malformed id gives false. */
  forget(id: string): Promise<boolean>;
  health(): MemoryHealth;
  close(): Promise<void>;
}
