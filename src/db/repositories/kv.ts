import type { AsyncDb } from '../query.js';
import { nowIso } from '../time.js';

export class KvRepo {
  constructor(private readonly db: AsyncDb) {}

  async get<T>(key: string): Promise<T | undefined> {
    const row = await this.db.get<{ value: string }>('SELECT value FROM kv WHERE key = ?', key);
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  async set(key: string, value: unknown): Promise<void> {
    await this.db.run(
      'INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
      key,
      JSON.stringify(value),
      nowIso(),
    );
  }

  async delete(key: string): Promise<void> {
    await this.db.run('DELETE FROM kv WHERE key = ?', key);
  }
}
