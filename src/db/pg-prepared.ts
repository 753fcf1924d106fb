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

export function preparingPool(pool: pg.Pool): PostgresPool {
  const wrapped = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const unnamed = new Set<string>();
  return {
    async connect() {
      const client = await pool.connect();
      let w = wrapped.get(client);
      if (!w) {
        w = wrapClient(client, unnamed);
        wrapped.set(client, w);
      }
      return w;
    },
    end: () => pool.end(),
  };
}

function wrapClient(client: pg.PoolClient, unnamed: Set<string>): PostgresPoolClient {
  const names = new Set<string>();
  const query = async (text: string, values: readonly unknown[]) => {
    // Without parameters: a simple query (migrations send several statements in one), never named.
    if (values.length === 0 || unnamed.has(text)) return client.query(text, values as unknown[]);
    const name = `f${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
    if (!names.has(name)) {
      if (names.size >= MAX_NAMED_PER_CONNECTION) return client.query(text, values as unknown[]);
      names.add(name);
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
    release: (destroy?: boolean) => client.release(destroy),
  };
}
