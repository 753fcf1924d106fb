import type { Db } from '../connection.js';
import { nowIso } from '../time.js';

export interface WorkerRow {
  id: string;
  host: string;
  pid: number;
  role: string;
  max_concurrent: number;
  running: string;
  started_at: string;
  heartbeat_at: string;
  stopped_at: string | null;
}

/** The registry of Factory processes sharing this database (GET /api/workers). */
export class WorkersRepo {
  constructor(private readonly db: Db) {}

  /** Registers the process or renews its heartbeat with what it runs now. */
  heartbeat(w: { id: string; host: string; pid: number; role: string; max_concurrent: number; running: number[] }): void {
    const now = nowIso();
    this.db
      .prepare(
        `INSERT INTO workers (id, host, pid, role, max_concurrent, running, started_at, heartbeat_at)
      VALUES (@id, @host, @pid, @role, @max_concurrent, @running, @now, @now)
      ON CONFLICT (id) DO UPDATE SET running = excluded.running, heartbeat_at = excluded.heartbeat_at, stopped_at = NULL`,
      )
      .run({ ...w, running: JSON.stringify(w.running), now });
  }

  stopped(id: string): void {
    this.db.prepare(`UPDATE workers SET stopped_at = ?, running = '[]' WHERE id = ?`).run(nowIso(), id);
  }

  /** Processes seen since `sinceIso`, newest heartbeat first. */
  list(sinceIso: string): WorkerRow[] {
    return this.db.prepare('SELECT * FROM workers WHERE heartbeat_at >= ? ORDER BY heartbeat_at DESC, id').all(sinceIso) as WorkerRow[];
  }

  purgeOlderThan(iso: string): number {
    return this.db.prepare('DELETE FROM workers WHERE heartbeat_at < ?').run(iso).changes;
  }
}
