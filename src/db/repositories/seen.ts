import type { Db } from '../connection.js';
import { nowIso } from '../time.js';

/** Keys of outside events already handled (idempotency for webhooks and pollers). */
export class SeenRepo {
  constructor(private readonly db: Db) {}

  /** Records the key; returns false when it was already there. */
  mark(key: string, own = false): boolean {
    return (
      this.db
        .prepare('INSERT INTO external_seen (key, own, created_at) VALUES (?, ?, ?) ON CONFLICT(key) DO NOTHING')
        .run(key, own ? 1 : 0, nowIso()).changes === 1
    );
  }

  has(key: string): { own: boolean } | undefined {
    const row = this.db.prepare('SELECT own FROM external_seen WHERE key = ?').get(key) as { own: number } | undefined;
    return row ? { own: row.own === 1 } : undefined;
  }

  purgeOlderThan(iso: string): void {
    this.db.prepare('DELETE FROM external_seen WHERE created_at < ? AND own = 0').run(iso);
  }
}
