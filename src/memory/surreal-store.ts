/**
 * Agent memory in SurrealDB 3 (embedded surrealkv by default, or a remote server): BM25 full-text recall,
 * optionally fused with KNN over OpenAI-style embeddings. Every method degrades instead of throwing.
 */
import type { Logger } from 'pino';
import type { Surreal } from 'surrealdb';
import type { Embedder } from './embeddings.js';
import { dropWeakHits, fuse, rankList, type Candidate } from './ranking.js';
import { errorText, openConnection, resolveTarget, withTimeout, type Connection, type ConnectTarget } from './surreal-connect.js';
import { scrubDeep } from '../secrets.js';
import { normaliseMemory } from './validate.js';
import {
  MEMORY_KINDS,
  type MemoryHealth,
  type MemoryRecord,
  type MemoryStore,
  type NewMemory,
  type RecallQuery,
  type SearchQuery,
} from './types.js';

export interface SurrealMemoryOptions {
  /** '' or absent → embedded store at surrealkv://<dataDir>/memory; 'mem://' for tests; ws(s)/http(s) → remote. */
  url?: string;
  user?: string;
  pass?: string;
  namespace: string;
  database: string;
  dataDir: string;
  embeddings?: Embedder | null;
  /** Bound for connecting, and for each later database call (default 10000). */
  connectTimeoutMs?: number;
  logger: Logger;
  /** KNN hits with a cosine similarity below this are ignored (default 0.25): KNN always finds "nearest" rows. */
  minSimilarity?: number;
  /** After a failed connect, wait this long before the next try, doubling to 5 min (default 5000). */
  reconnectBaseMs?: number;
}

const FIELDS = 'id, repo, task_id, agent_type, kind, title, content, tags, created_at';
const RECALL_DEFAULT = 5;
const RECALL_MAX = 50;
const SEARCH_DEFAULT = 20;
const SEARCH_MAX = 200;
/** Characters of title + content sent to the embedder (the API limit is 8192 tokens). */
const EMBED_CHARS = 8000;
const ID_PATTERN = /^(?:memory:)?([A-Za-z0-9_]{1,64})$/;

/**
 * The words of a query as full-text match input. The class tokenizer keeps punctuation runs (";", "?", "--")
 * as tokens, and with OR matching a stray "." in a query would match every memory containing one.
 */
function matchText(text: unknown): string {
  return typeof text === 'string' ? text.replace(/[^\p{L}\p{N}]+/gu, ' ').trim() : '';
}

/*
 * Schema, applied on every start (IF NOT EXISTS keeps it idempotent).
 * Full text: one FULLTEXT BM25 index over `search_text`, which the database itself derives from title, content
 * and tags. One field gives one coherent BM25 score (shared IDF and length normalisation); separate title and
 * content indexes would need two match predicates and an ad-hoc sum of their scores. Queries use `@1,OR@`, so a
 * memory matching any query word is a candidate (the default AND would demand every word, too strict for
 * natural-language recall queries).
 * Vectors: `embedding` is optional; the HNSW index is defined separately once the dimension is known.
 */
const SCHEMA = `
DEFINE ANALYZER IF NOT EXISTS memory_text TOKENIZERS blank,class FILTERS lowercase,ascii,snowball(english);
DEFINE TABLE IF NOT EXISTS memory SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS repo ON memory TYPE string;
DEFINE FIELD IF NOT EXISTS task_id ON memory TYPE int | null;
DEFINE FIELD IF NOT EXISTS agent_type ON memory TYPE string;
DEFINE FIELD IF NOT EXISTS kind ON memory TYPE string ASSERT $value IN ['outcome', 'learning', 'gotcha', 'decision'];
DEFINE FIELD IF NOT EXISTS title ON memory TYPE string;
DEFINE FIELD IF NOT EXISTS content ON memory TYPE string;
DEFINE FIELD IF NOT EXISTS tags ON memory TYPE array<string> DEFAULT [];
DEFINE FIELD IF NOT EXISTS search_text ON memory VALUE string::concat(title, ' ', content, ' ', array::join(tags, ' '));
DEFINE FIELD IF NOT EXISTS created_at ON memory TYPE datetime DEFAULT time::now();
DEFINE FIELD IF NOT EXISTS embedding ON memory TYPE option<array<float>>;
DEFINE INDEX IF NOT EXISTS memory_repo_created ON memory FIELDS repo, created_at;
DEFINE INDEX IF NOT EXISTS memory_search ON memory FIELDS search_text FULLTEXT ANALYZER memory_text BM25;
DEFINE TABLE IF NOT EXISTS memory_meta SCHEMALESS;
`;

type Row = Record<string, unknown>;

function clampInt(value: unknown, fallback: number, max: number): number {
  const n = typeof value === 'number' && Number.isFinite(value) ? Math.floor(value) : fallback;
  return Math.min(Math.max(n, 1), max);
}

function isoTime(value: unknown): string {
  if (value && typeof value === 'object' && 'toDate' in value && typeof value.toDate === 'function') {
    return (value.toDate() as Date).toISOString();
  }
  if (value instanceof Date) return value.toISOString();
  const parsed = new Date(String(value));
  return Number.isNaN(parsed.getTime()) ? String(value) : parsed.toISOString();
}

function toRecord(row: Row): MemoryRecord {
  const kind = MEMORY_KINDS.find((k) => k === row.kind) ?? 'learning';
  return {
    id: String(row.id),
    repo: String(row.repo ?? ''),
    task_id: typeof row.task_id === 'number' ? row.task_id : null,
    agent_type: String(row.agent_type ?? ''),
    kind,
    title: String(row.title ?? ''),
    content: String(row.content ?? ''),
    tags: Array.isArray(row.tags) ? row.tags.map(String) : [],
    created_at: isoTime(row.created_at),
  };
}

class SurrealMemory implements MemoryStore {
  private readonly log: Logger;
  private readonly target: ConnectTarget | null = null;
  private readonly timeoutMs: number;
  private readonly minSimilarity: number;
  private conn: Connection | null = null;
  private starting: Promise<void> | null = null;
  /** The first connection attempt is under way. */
  private opening = false;
  private initError: string | null = null;
  private dbError: string | null = null;
  private embedError: string | null = null;
  /** After a failed embedding, calls skip the embedder until then: a dead API must not cost every task its timeout. */
  private embedPausedUntil = 0;
  private embedFailures = 0;
  /** After a failed connect, the next init() may try again from then on (5 s doubling to 5 min). */
  private initRetryAt = Number.POSITIVE_INFINITY;
  private initFailures = 0;
  /** Vector dimension; 0 while vectors are off. */
  private dim = 0;
  /** This process created an index on the client (see Connection.release). */
  private pinned = false;
  private closed = false;

  constructor(private readonly opts: SurrealMemoryOptions) {
    this.log = opts.logger.child({ component: 'memory' });
    this.timeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.minSimilarity = opts.minSimilarity ?? 0.25;
    try {
      this.target = resolveTarget(opts.url, opts.dataDir);
    } catch (err) {
      this.initError = `bad memory url: ${errorText(err)}`;
    }
  }

  init(): Promise<void> {
    if (this.closed) return this.starting ?? Promise.resolve();
    // A server that was down at boot is tried again later: memory must come back without a restart.
    if (this.starting && !this.conn && Date.now() >= this.initRetryAt) {
      this.initRetryAt = Number.POSITIVE_INFINITY;
      this.starting = this.start();
    }
    if (!this.starting) {
      this.opening = true;
      this.starting = this.start().finally(() => {
        this.opening = false;
      });
    }
    return this.starting;
  }

  health(): MemoryHealth {
    const backend = this.target?.backend ?? (this.opts.url?.trim() ? 'remote' : 'embedded');
    const vectors = this.dim > 0;
    if (this.opening && !this.closed) return { status: 'starting', backend, vectors: false };
    const error = this.initError ?? (this.conn ? (this.dbError ?? this.embedError) : this.closed ? 'closed' : 'not initialised');
    return error ? { status: 'degraded', backend, error, vectors } : { status: 'ok', backend, vectors };
  }

  async add(m: NewMemory): Promise<MemoryRecord | null> {
    const checked = normaliseMemory(m);
    if ('error' in checked) {
      this.log.warn({ err: checked.error }, 'memory not stored: invalid input');
      return null;
    }
    const value = scrubDeep(checked.value); // stored, embedded (sent to OpenAI) and put in later prompts
    await this.init();
    const embedding = this.dim > 0 ? await this.embedOne(`${value.title}\n${value.content}`) : null;
    return this.guard('add', null, async (db) => {
      const [rows] = await this.query<[Row[]]>(db, `CREATE memory CONTENT $m RETURN ${FIELDS}`, {
        m: { ...value, ...(embedding ? { embedding } : {}) },
      });
      return rows[0] ? toRecord(rows[0]) : null;
    });
  }

  async recall(q: RecallQuery): Promise<MemoryRecord[]> {
    const repo = typeof q?.repo === 'string' ? q.repo.trim() : '';
    const text = matchText(q?.text);
    const limit = clampInt(q?.limit, RECALL_DEFAULT, RECALL_MAX);
    if (!text) return this.newest(repo, limit);
    await this.init();
    const pool = Math.max(limit * 4, 20);
    const vector = this.dim > 0 ? this.embedOne(String(q.text).trim()) : Promise.resolve(null);
    return this.guard('recall', [], async (db) => {
      const where = 'WHERE search_text @1,OR@ $q';
      const order = `ORDER BY score DESC, created_at DESC LIMIT ${pool}`;
      // Two queries so that hits from the queried repo are never crowded out by other repos.
      const [same, other] = await this.query<[Row[], Row[]]>(
        db,
        `SELECT ${FIELDS}, search::score(1) AS score FROM memory ${where} AND repo = $repo ${order};
         SELECT ${FIELDS}, search::score(1) AS score FROM memory ${where} AND repo != $repo ${order};`,
        { q: text, repo },
      );
      const bm25 = dropWeakHits([...same, ...other].map((row) => ({ record: toRecord(row), relevance: Number(row.score) || 0 })));
      const lists = [rankList(bm25, repo)];
      const v = await vector;
      if (v) lists.push(rankList(await this.knn(db, v, pool).catch((err: unknown) => this.knnFailed(err)), repo));
      return fuse(lists, repo, limit);
    });
  }

  async search(q: SearchQuery): Promise<MemoryRecord[]> {
    const repo = typeof q?.repo === 'string' ? q.repo.trim() : '';
    const raw = typeof q?.q === 'string' ? q.q.trim() : '';
    const text = matchText(raw);
    const limit = clampInt(q?.limit, SEARCH_DEFAULT, SEARCH_MAX);
    if (raw && !text) return [];
    return this.guard('search', [], async (db) => {
      // Only fixed fragments are joined here; every user value travels as a $parameter.
      const conditions = [...(repo ? ['repo = $repo'] : []), ...(text ? ['search_text @1,OR@ $q'] : [])];
      const where = conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
      const sql = text
        ? `SELECT ${FIELDS}, search::score(1) AS score FROM memory ${where} ORDER BY score DESC, created_at DESC LIMIT $limit`
        : `SELECT ${FIELDS} FROM memory ${where} ORDER BY created_at DESC LIMIT $limit`;
      const [rows] = await this.query<[Row[]]>(db, sql, { repo, q: text, limit });
      return rows.map((row) => (text ? { ...toRecord(row), score: Number(row.score) || 0 } : toRecord(row)));
    });
  }

  async forget(id: string): Promise<boolean> {
    const match = typeof id === 'string' ? ID_PATTERN.exec(id.trim()) : null;
    if (!match) return false;
    return this.guard('forget', false, async (db) => {
      const [rows] = await this.query<[Row[]]>(db, `DELETE type::record('memory', $key) RETURN BEFORE`, { key: match[1] });
      return rows.length > 0;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.starting;
    const conn = this.conn;
    this.conn = null;
    this.dim = 0;
    try {
      await conn?.release(this.pinned);
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'closing the memory store failed');
    }
  }

  // ---- internals ----

  private async start(): Promise<void> {
    const target = this.target;
    if (!target) {
      this.log.warn({ err: this.initError }, 'memory store unavailable; continuing without memory');
      return;
    }
    const { namespace, database, user, pass } = this.opts;
    try {
      const conn = await openConnection({
        target,
        namespace,
        database,
        ...(user ? { user } : {}),
        ...(pass ? { pass } : {}),
        timeoutMs: this.timeoutMs,
        onNotice: (message) => this.log.info({ url: target.display }, message),
      });
      this.conn = conn;
      if (this.closed) throw new Error('closed during start');
      const existing = await this.indexes(conn.db);
      await this.query(conn.db, SCHEMA);
      if (!existing.has('memory_search') || !existing.has('memory_repo_created')) this.pinned = true;
      if (this.opts.embeddings) await this.setupVectors(conn.db, this.opts.embeddings, existing);
      this.initError = null;
      this.initFailures = 0;
      this.log.info({ backend: target.backend, url: target.display, vectors: this.dim > 0 }, 'memory store ready');
    } catch (err) {
      this.initError = errorText(err);
      this.initFailures += 1;
      this.initRetryAt = Date.now() + Math.min((this.opts.reconnectBaseMs ?? 5000) * 2 ** (this.initFailures - 1), 5 * 60_000);
      this.log.warn(
        { backend: target.backend, url: target.display, err: this.initError },
        'memory store unavailable; continuing without memory',
      );
      const conn = this.conn;
      this.conn = null;
      this.dim = 0;
      await conn?.release(this.pinned).catch(() => {});
    }
  }

  /** Index definitions of the memory table, by name (empty when the table does not exist yet). */
  private async indexes(db: Surreal): Promise<Map<string, string>> {
    const [info] = await this.query<[{ indexes?: Record<string, string> } | null]>(db, 'INFO FOR TABLE memory');
    return new Map(Object.entries(info?.indexes ?? {}));
  }

  private async setupVectors(db: Surreal, embedder: Embedder, existing: Map<string, string>): Promise<void> {
    let dim = embedder.dimensions ?? 0;
    if (!dim) {
      try {
        const [probe] = await withTimeout(embedder.embed(['dimension probe']), this.timeoutMs, 'embedding probe timed out');
        dim = probe?.length ?? 0;
      } catch (err) {
        this.embedError = `embeddings unavailable: ${errorText(err)}`;
        this.log.warn({ err: this.embedError }, 'cannot size the vector index; recall uses full-text search only');
        return;
      }
    }
    // The dimension is interpolated (SurrealQL wants a literal there), so it must be a plain positive integer.
    if (!Number.isSafeInteger(dim) || dim < 1 || dim > 16_384) throw new Error(`bad embedding dimension ${dim}`);
    const current = existing.get('memory_embedding');
    const [meta] = await this.query<[{ model?: string } | null]>(db, 'SELECT * FROM ONLY memory_meta:embedding');
    const oldDim = Number(/DIMENSION (\d+)/.exec(current ?? '')?.[1] ?? 0);
    if (current && (oldDim !== dim || (meta?.model && meta.model !== embedder.model))) {
      this.log.warn(
        { from: { model: meta?.model, dim: oldDim }, to: { model: embedder.model, dim } },
        'embedding model changed; dropping stored vectors',
      );
      await this.query(
        db,
        'REMOVE INDEX IF EXISTS memory_embedding ON memory; UPDATE memory SET embedding = NONE WHERE embedding != NONE RETURN NONE;',
      );
      existing.delete('memory_embedding');
    }
    await this.query(
      db,
      `DEFINE INDEX IF NOT EXISTS memory_embedding ON memory FIELDS embedding HNSW DIMENSION ${dim} DIST COSINE TYPE F32;
       UPSERT memory_meta:embedding SET model = $model, dimension = $dim RETURN NONE;`,
      { model: embedder.model, dim },
    );
    if (!existing.has('memory_embedding')) this.pinned = true;
    this.dim = dim;
  }

  private async knn(db: Surreal, vector: number[], pool: number): Promise<Candidate[]> {
    const [rows] = await this.query<[Row[]]>(
      db,
      `SELECT ${FIELDS}, vector::distance::knn() AS dist FROM memory WHERE embedding <|${pool},${Math.max(pool, 100)}|> $v ORDER BY dist`,
      { v: vector },
    );
    return rows
      .map((row) => ({ record: toRecord(row), relevance: 1 - Number(row.dist) }))
      .filter((c) => Number.isFinite(c.relevance) && c.relevance >= this.minSimilarity);
  }

  private knnFailed(err: unknown): Candidate[] {
    this.log.warn({ err: errorText(err) }, 'vector search failed; using full-text results only');
    return [];
  }

  private async newest(repo: string, limit: number): Promise<MemoryRecord[]> {
    return this.guard('recall', [], async (db) => {
      const [rows] = await this.query<[Row[]]>(
        db,
        `SELECT ${FIELDS} FROM memory WHERE repo = $repo ORDER BY created_at DESC LIMIT $limit`,
        { repo, limit },
      );
      return rows.map(toRecord);
    });
  }

  /** One vector, or null (logged, health degraded) when the embedder fails: callers fall back to BM25. */
  private async embedOne(text: string): Promise<number[] | null> {
    const embedder = this.opts.embeddings;
    if (!embedder || this.dim === 0 || Date.now() < this.embedPausedUntil) return null;
    try {
      const [vector] = await withTimeout(embedder.embed([text.slice(0, EMBED_CHARS)]), this.timeoutMs * 2, 'embedding timed out');
      if (!vector || vector.length !== this.dim)
        throw new Error(`embedder returned ${vector?.length ?? 0} dimensions, expected ${this.dim}`);
      this.embedError = null;
      this.embedFailures = 0;
      return vector;
    } catch (err) {
      // 5 s, 10 s, … up to 5 min without asking; one call then tries again.
      const pauseMs = Math.min(300_000, 5000 * 2 ** Math.min(this.embedFailures++, 6));
      this.embedPausedUntil = Date.now() + pauseMs;
      this.embedError = `embeddings unavailable: ${errorText(err)}`;
      this.log.warn({ err: this.embedError, retry_in_ms: pauseMs }, 'embedding failed; using full-text search only');
      return null;
    }
  }

  private async query<R extends unknown[]>(db: Surreal, sql: string, vars?: Record<string, unknown>): Promise<R> {
    const results: unknown = await withTimeout(Promise.resolve(db.query(sql, vars)), this.timeoutMs, 'memory query timed out');
    return results as R;
  }

  /** Runs a database operation; on failure logs, marks health degraded and returns the fallback. */
  private async guard<T>(op: string, fallback: T, work: (db: Surreal) => Promise<T>): Promise<T> {
    if (this.closed) return fallback;
    await this.init();
    const db = this.conn?.db;
    if (!db) return fallback;
    try {
      const result = await work(db);
      this.dbError = null;
      return result;
    } catch (err) {
      this.dbError = errorText(err);
      this.log.warn({ op, err: this.dbError }, 'memory operation failed');
      return fallback;
    }
  }
}

export function createSurrealMemory(opts: SurrealMemoryOptions): MemoryStore {
  return new SurrealMemory(opts);
}
