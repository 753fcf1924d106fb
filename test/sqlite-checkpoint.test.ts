// SQLite's write-ahead log is copied back into the database file by a thread of its own (the main
// connection's automatic checkpoints are off): the data reaches the database file, the log stays
// small while writes go on, and nothing is lost across a close and reopen.
import { statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteDb } from '../src/db/sqlite.js';
import { tempDir, waitFor } from './helpers.js';

const MiB = 1024 * 1024;
const size = (file: string) => {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
};

describe('off-thread WAL checkpoints', () => {
  it('copies each commit into the database file and keeps the log from growing with the data', async () => {
    const file = path.join(tempDir('factory-ckpt-'), 'factory.db');
    const db = new SqliteDb(file);
    await db.exec('CREATE TABLE blobs (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
    const body = 'b'.repeat(64 * 1024);
    const rounds = 12;
    for (let i = 1; i <= rounds; i++) {
      await db.transaction(async (tx) => {
        for (let j = 0; j < 16; j++) await tx.run('INSERT INTO blobs (body) VALUES (?)', body);
      });
      // Nothing on this connection checkpoints: only the thread can move the data into the file.
      await waitFor(() => size(file) >= i * MiB, { timeoutMs: 10_000, what: `round ${i} in the database file` });
    }
    // Each write after a finished checkpoint starts the log again from its beginning.
    expect(size(`${file}-wal`)).toBeLessThan((rounds * MiB) / 4);
    await db.close();

    const again = new SqliteDb(file);
    const row = await again.get<{ n: number; bytes: number }>('SELECT COUNT(*) AS n, SUM(LENGTH(body)) AS bytes FROM blobs');
    expect(row).toEqual({ n: rounds * 16, bytes: rounds * 16 * body.length });
    await again.close();
  });
});
