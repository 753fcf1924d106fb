// The PostgreSQL side of the Db interface: parameter translation, errors, transactions, types.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../src/db/connection.js';
import { PgError, translateParams } from '../src/db/pg-sync.js';
import { TasksRepo } from '../src/db/repositories/tasks.js';
import { freshDatabase, hasPg, PG_SKIP_NOTE, type TestDatabase } from './pg.js';

describe('translateParams', () => {
  it('numbers ? in order and gives each @name one $n, leaving strings, identifiers, comments and @@ alone', () => {
    expect(translateParams('SELECT * FROM t WHERE a = ? AND b = ?').text).toBe('SELECT * FROM t WHERE a = $1 AND b = $2');
    const named = translateParams('UPDATE t SET a = @a, b = @b WHERE id = @id AND a <> @a');
    expect(named.text).toBe('UPDATE t SET a = $1, b = $2 WHERE id = $3 AND a <> $1');
    expect(named.names).toEqual(['a', 'b', 'id']);
    expect(translateParams('SELECT \'what? @x\', "col?" FROM t -- really? @y\nWHERE a = ?').text).toBe(
      'SELECT \'what? @x\', "col?" FROM t -- really? @y\nWHERE a = $1',
    );
    expect(translateParams("SELECT 'it''s ?' , ?").text).toBe("SELECT 'it''s ?' , $1");
    expect(translateParams("SELECT to_tsvector('simple', m) @@ to_tsquery('simple', ?)").text).toBe(
      "SELECT to_tsvector('simple', m) @@ to_tsquery('simple', $1)",
    );
    expect(() => translateParams('SELECT ? , @a')).toThrow(/not both/);
  });
});

describe('an unreachable PostgreSQL', () => {
  it('fails the start quickly with the reason and without the password', async () => {
    const started = Date.now();
    let error: Error | undefined;
    try {
      openDb('postgres://factory:Very-secret-pw@127.0.0.1:1/factory');
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).toMatch(/ECONNREFUSED/);
    expect(error?.message).not.toContain('Very-secret-pw');
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});

describe.skipIf(!hasPg)(`PgSyncDb on a real server${PG_SKIP_NOTE}`, () => {
  let tdb: TestDatabase;
  let db: Db;
  beforeAll(async () => {
    tdb = await freshDatabase();
    db = openDb(tdb.url);
  });
  afterAll(async () => {
    db?.close();
    await tdb?.drop();
  });

  it('returns rows like SQLite does: numbers for 64-bit ids and sums, undefined for no row', async () => {
    const tasks = new TasksRepo(db);
    const t = tasks.create({ title: 'x', run: true });
    expect(typeof t.id).toBe('number');
    const claimed = (await tasks.claimNext('me', 60_000))!;
    expect(claimed.lease_expires_at).toBeGreaterThan(Date.now());
    expect(typeof claimed.lease_expires_at).toBe('number');
    expect(await tasks.counts()).toEqual({ queued: 0, runnable: 0, in_progress: 1, waiting_for_input: 0 });
    expect(tasks.get(999_999)).toBeUndefined();
    expect(db.prepare('SELECT 1 AS one WHERE 1 = 0').get()).toBeUndefined();
  });

  it('rolls a transaction back on error, and nested ones to their savepoint', () => {
    db.exec('CREATE TABLE tx_t (v INTEGER PRIMARY KEY)');
    const insert = db.prepare('INSERT INTO tx_t (v) VALUES (?)');
    expect(() =>
      db.transaction(() => {
        insert.run(1);
        insert.run(1);
      })(),
    ).toThrow(PgError);
    expect(db.prepare('SELECT COUNT(*) AS n FROM tx_t').get()).toEqual({ n: 0 });
    db.transaction(() => {
      insert.run(2);
      expect(() =>
        db.transaction(() => {
          insert.run(3);
          throw new Error('inner');
        })(),
      ).toThrow('inner');
      insert.run(4);
    })();
    expect((db.prepare('SELECT v FROM tx_t ORDER BY v').all() as { v: number }[]).map((r) => r.v)).toEqual([2, 4]);
  });

  it('never finishes a transaction on a new connection after its own died, and recovers afterwards', () => {
    const other = openDb(tdb.url, { migrate: false });
    try {
      db.exec('CREATE TABLE tx_lost (v INTEGER)');
      const insert = db.prepare('INSERT INTO tx_lost (v) VALUES (?)');
      const count = () => (db.prepare('SELECT COUNT(*) AS n FROM tx_lost').get() as { n: number }).n;
      const killMine = () => {
        const pid = (db.prepare('SELECT pg_backend_pid() AS p').get() as { p: number }).p;
        other.prepare('SELECT pg_terminate_backend(?)').get(pid);
      };
      // The connection dies in the middle: the rest must not run on a fresh connection outside the transaction.
      expect(() =>
        db.transaction(() => {
          insert.run(1);
          killMine();
          insert.run(2);
          insert.run(3);
        })(),
      ).toThrow(/lost during a transaction|terminat/);
      expect(count()).toBe(0);
      // It dies just before COMMIT: the commit fails, nothing is kept, and later transactions still work.
      expect(() =>
        db.transaction(() => {
          insert.run(4);
          killMine();
        })(),
      ).toThrow();
      expect(count()).toBe(0);
      db.transaction(() => {
        insert.run(5);
        db.transaction(() => insert.run(6))();
      })();
      expect((db.prepare('SELECT v FROM tx_lost ORDER BY v').all() as { v: number }[]).map((r) => r.v)).toEqual([5, 6]);
    } finally {
      other.close();
    }
  });

  it('replaces a connection thread that died', async () => {
    await (db as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await new Promise((r) => setImmediate(r));
    expect(db.prepare('SELECT 1 AS one').get()).toEqual({ one: 1 });
  });

  it('reports server errors with their SQLSTATE and keeps working afterwards', () => {
    let err: PgError | undefined;
    try {
      db.prepare('SELECT * FROM no_such_table').all();
    } catch (e) {
      err = e as PgError;
    }
    expect(err).toBeInstanceOf(PgError);
    expect(err!.code).toBe('42P01');
    expect(db.prepare('SELECT ? AS v').get(5)).toEqual({ v: '5' });
    expect(() => db.prepare('SELECT @a AS v').get({})).toThrow(/Missing named parameter "a"/);
    expect(() => db.prepare('SELECT ? AS v').get()).toThrow(/Too few/);
  });
});
