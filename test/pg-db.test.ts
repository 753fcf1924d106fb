// The PostgreSQL side of the Db interface: parameter translation, errors, transactions, types.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../src/db/connection.js';
import type { AsyncDb } from '../src/db/query.js';
import { waitFor } from './helpers.js';
import { compileParams } from '../src/db/query.js';
import { TasksRepo } from '../src/db/repositories/tasks.js';
import { freshDatabase, hasPg, PG_SKIP_NOTE, type TestDatabase } from './pg.js';

describe('compileParams', () => {
  it('numbers ? in order and gives each @name one $n on PostgreSQL, leaving strings, identifiers, comments and @@ alone', () => {
    const pg = (sql: string) => compileParams(sql, 'postgres');
    expect(pg('SELECT * FROM t WHERE a = ? AND b = ?').text).toBe('SELECT * FROM t WHERE a = $1 AND b = $2');
    const named = pg('UPDATE t SET a = @a, b = @b WHERE id = @id AND a <> @a');
    expect(named.text).toBe('UPDATE t SET a = $1, b = $2 WHERE id = $3 AND a <> $1');
    expect(named.slots).toEqual(['a', 'b', 'id']);
    expect(pg('SELECT \'what? @x\', "col?" FROM t -- really? @y\nWHERE a = ?').text).toBe(
      'SELECT \'what? @x\', "col?" FROM t -- really? @y\nWHERE a = $1',
    );
    expect(pg("SELECT 'it''s ?' , ?").text).toBe("SELECT 'it''s ?' , $1");
    expect(pg("SELECT to_tsvector('simple', m) @@ to_tsquery('simple', ?)").text).toBe(
      "SELECT to_tsvector('simple', m) @@ to_tsquery('simple', $1)",
    );
    expect(() => pg('SELECT ? , @a')).toThrow(/not both/);
  });

  it('gives SQLite one ? per use of a name, in order', () => {
    const c = compileParams('UPDATE t SET a = @a, b = @b WHERE id = @id AND a <> @a', 'sqlite');
    expect(c.text).toBe('UPDATE t SET a = ?, b = ? WHERE id = ? AND a <> ?');
    expect(c.slots).toEqual(['a', 'b', 'id', 'a']);
  });
});

describe('an unreachable PostgreSQL', () => {
  it('fails the start quickly with the reason and without the password', async () => {
    const started = Date.now();
    let error: Error | undefined;
    try {
      await openDb('postgres://factory:Very-secret-pw@127.0.0.1:1/factory');
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).toMatch(/ECONNREFUSED/);
    expect(error?.message).not.toContain('Very-secret-pw');
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});

describe.skipIf(!hasPg)(`PostgresDb on a real server${PG_SKIP_NOTE}`, () => {
  let tdb: TestDatabase;
  let db: Db;
  beforeAll(async () => {
    tdb = await freshDatabase();
    db = await openDb(tdb.url);
  });
  afterAll(async () => {
    await db?.close();
    await tdb?.drop();
  });

  it('returns rows like SQLite does: numbers for 64-bit ids and sums, undefined for no row', async () => {
    const tasks = new TasksRepo(db);
    const t = await tasks.create({ title: 'x', run: true });
    expect(typeof t.id).toBe('number');
    const claimed = (await tasks.claimNext('me', 60_000))!;
    expect(claimed.lease_expires_at).toBeGreaterThan(Date.now());
    expect(typeof claimed.lease_expires_at).toBe('number');
    expect(await tasks.counts()).toEqual({ queued: 0, runnable: 0, in_progress: 1, waiting_for_input: 0 });
    expect(await tasks.get(999_999)).toBeUndefined();
    expect(await db.get('SELECT 1 AS one WHERE 1 = 0')).toBeUndefined();
  });

  it('rolls a transaction back on error; a nested one joins the outer transaction', async () => {
    await db.exec('CREATE TABLE tx_t (v INTEGER PRIMARY KEY)');
    const insert = (q: AsyncDb, v: number) => q.run('INSERT INTO tx_t (v) VALUES (?)', v);
    await expect(
      db.transaction(async (tx) => {
        await insert(tx, 1);
        await insert(tx, 1);
      }),
    ).rejects.toMatchObject({ code: '23505' });
    expect(await db.get('SELECT COUNT(*) AS n FROM tx_t')).toEqual({ n: 0 });
    await db.transaction(async (tx) => {
      await insert(tx, 2);
      await tx.transaction(async (inner) => insert(inner, 3));
      await insert(tx, 4);
    });
    expect((await db.all<{ v: number }>('SELECT v FROM tx_t ORDER BY v')).map((r) => r.v)).toEqual([2, 3, 4]);
    // A failing nested part fails the whole: nothing of it stays.
    await expect(
      db.transaction(async (tx) => {
        await insert(tx, 5);
        await tx.transaction(async () => {
          throw new Error('inner');
        });
      }),
    ).rejects.toThrow('inner');
    expect((await db.all<{ v: number }>('SELECT v FROM tx_t ORDER BY v')).map((r) => r.v)).toEqual([2, 3, 4]);
  });

  it('never finishes a transaction on a new connection after its own died, and recovers afterwards', async () => {
    const other = await openDb(tdb.url, { migrate: false });
    try {
      await db.exec('CREATE TABLE tx_lost (v INTEGER)');
      const insert = (q: AsyncDb, v: number) => q.run('INSERT INTO tx_lost (v) VALUES (?)', v);
      const count = async () => (await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM tx_lost'))!.n;
      const killMine = async (q: AsyncDb) => {
        const pid = (await q.get<{ p: number }>('SELECT pg_backend_pid() AS p'))!.p;
        await other.get('SELECT pg_terminate_backend(?)', pid);
      };
      // The connection dies in the middle: the rest must not run on a fresh connection outside the transaction.
      await expect(
        db.transaction(async (tx) => {
          await insert(tx, 1);
          await killMine(tx);
          await insert(tx, 2);
          await insert(tx, 3);
        }),
      ).rejects.toThrow(/terminat|Connection terminated|not queryable/i);
      expect(await count()).toBe(0);
      // It dies just before COMMIT: the commit fails, nothing is kept, and later transactions still work.
      await expect(
        db.transaction(async (tx) => {
          await insert(tx, 4);
          await killMine(tx);
        }),
      ).rejects.toThrow();
      expect(await count()).toBe(0);
      await db.transaction(async (tx) => {
        await insert(tx, 5);
        await tx.transaction(async (inner) => insert(inner, 6));
      });
      expect((await db.all<{ v: number }>('SELECT v FROM tx_lost ORDER BY v')).map((r) => r.v)).toEqual([5, 6]);
    } finally {
      await other.close();
    }
  });

  it('replaces a pooled connection the server dropped while idle', async () => {
    const other = await openDb(tdb.url, { migrate: false });
    try {
      const pid = (await db.get<{ p: number }>('SELECT pg_backend_pid() AS p'))!.p;
      await other.get('SELECT pg_terminate_backend(?)', pid);
      await waitFor(
        async () => (await other.get<{ n: number }>('SELECT COUNT(*) AS n FROM pg_stat_activity WHERE pid = ?', pid))!.n === 0,
        {
          what: 'the backend gone',
        },
      );
      expect(await db.get('SELECT 1 AS one')).toEqual({ one: 1 });
    } finally {
      await other.close();
    }
  });

  it('reports server errors with their SQLSTATE and keeps working afterwards', async () => {
    await expect(db.all('SELECT * FROM no_such_table')).rejects.toMatchObject({ code: '42P01' });
    expect(await db.get('SELECT ? AS v', 5)).toEqual({ v: '5' });
    await expect(db.get('SELECT @a AS v', {})).rejects.toThrow(/Missing named parameter "a"/);
    await expect(db.get('SELECT ? AS v')).rejects.toThrow(/Too few/);
  });
});
