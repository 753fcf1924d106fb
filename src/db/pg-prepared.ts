// Named prepared statements for the pool Kysely uses. node-postgres sends an unnamed statement to
// be parsed and planned again at every call; for Factory's short hot statements (a claim, a lease
// renewal, a guarded transition) planning costs more than running them. A name per SQL text lets
// the server parse once per connection and reuse the plan. Neither Kysely nor pg.Pool does this
// on their own (Kysely always passes text and values), so this adapter sits between them.
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { PostgresPool, PostgresPoolClient } from 'kysely';

/** Named statements at most per connection; beyond that a new text runs unnamed (dynamic SQL). */
const MAX_NAMED_PER_CONNECTION = 300;

/**
 * "cached plan must not change result type": a table this statement reads changed shape since it
 * was prepared (another process migrated). Such a text is sent unnamed from then on.
 */
const PLAN_CHANGED = '0A000';

/**
 * The server ended this connection (an administrator, a restart, a crash) or the socket broke. A
 * client that saw one of these is never handed out again: the pool would otherwise take it back as
 * idle when it is released, before its socket's end is noticed, and the next query would fail too.
 */
const CONNECTION_GONE = new Set(['57P01', '57P02', '57P03', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/** The statement never reached a live session: the server had ended it first, so it is safe to send again. */
export function endedBeforeRunning(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === '57P01' || code === '57P02' || code === '57P03';
}

function connectionGone(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  return CONNECTION_GONE.has(e?.code ?? '') || /Connection terminated/i.test(e?.message ?? '');
}

export function preparingPool(pool: pg.Pool): PostgresPool {
  const wrapped = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const unnamed = new Set<string>();
  // The statement name of each SQL text, hashed once (the texts are the repositories' own, a bounded
  // set but for spelled-out id lists; forgetting one only means hashing it again).
  const names = new Map<string, string>();
  const nameOf = (text: string): string => {
    let name = names.get(text);
    if (!name) {
      name = `f${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
      if (names.size >= 2000) names.clear();
      names.set(text, name);
    }
    return name;
  };
  return {
    async connect() {
      const client = await pool.connect();
      let w = wrapped.get(client);
      if (!w) {
        w = wrapClient(client, unnamed, nameOf);
        wrapped.set(client, w);
      }
      return w;
    },
    end: () => pool.end(),
  };
}

function wrapClient(client: pg.PoolClient, unnamed: Set<string>, nameOf: (text: string) => string): PostgresPoolClient {
  /** Statements this connection has prepared. */
  const prepared = new Set<string>();
  let broken = false;
  const query = (text: string, values: readonly unknown[]) =>
    send(text, values).catch((err: unknown) => {
      if (connectionGone(err)) broken = true;
      throw err;
    });
  const send = async (text: string, values: readonly unknown[]) => {
    // Without parameters: a simple query (migrations send several statements in one), never named.
    if (values.length === 0 || unnamed.has(text)) return client.query(text, values as unknown[]);
    const name = nameOf(text);
    if (!prepared.has(name)) {
      if (prepared.size >= MAX_NAMED_PER_CONNECTION) return client.query(text, values as unknown[]);
      prepared.add(name);
    }
    try {
      return await client.query({ name, text, values: values as unknown[] });
    } catch (err) {
      if ((err as { code?: string }).code !== PLAN_CHANGED) throw err;
      unnamed.add(text);
      return client.query(text, values as unknown[]);
    }
  };
  return {
    // Kysely's streaming passes a cursor object instead of text; it goes through untouched.
    query: ((textOrCursor: unknown, values?: readonly unknown[]) =>
      typeof textOrCursor === 'string'
        ? query(textOrCursor, values ?? [])
        : client.query(textOrCursor as never)) as unknown as PostgresPoolClient['query'],
    release: (destroy?: boolean) => client.release(destroy || broken),
  };
}
