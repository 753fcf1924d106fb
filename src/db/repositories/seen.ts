import type { AsyncDb } from '../query.js';
import { nowIso } from '../time.js';

/** Keys of outside events already handled (idempotency for webhooks and pollers). */
export class SeenRepo {
  constructor(private readonly db: AsyncDb) {}

  /** Records the key; returns false when it was already there. */
  async mark(key: string, own = false): Promise<boolean> {
    return (
      (
        await this.db.run(
          'INSERT INTO external_seen (key, own, created_at) VALUES (?, ?, ?) ON CONFLICT(key) DO NOTHING',
          key,
          own ? 1 : 0,
          nowIso(),
        )
      ).changes === 1
    );
  }

  async has(key: string): Promise<{ own: boolean } | undefined> {
    const row = (await this.db.get('SELECT own FROM external_seen WHERE key = ?', key)) as { own: number } | undefined;
    return row ? { own: row.own === 1 } : undefined;
  }

  async purgeOlderThan(iso: string): Promise<void> {
    await this.db.run('DELETE FROM external_seen WHERE created_at < ? AND own = 0', iso);
  }
}
