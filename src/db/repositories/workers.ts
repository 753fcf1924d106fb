import type { AsyncDb } from '../query.js';
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
  constructor(private readonly db: AsyncDb) {}

  /** Registers the process or renews its heartbeat with what it runs now. */
  async heartbeat(w: { id: string; host: string; pid: number; role: string; max_concurrent: number; running: number[] }): Promise<void> {
    const now = nowIso();
    await this.db.run(
      `INSERT INTO workers (id, host, pid, role, max_concurrent, running, started_at, heartbeat_at)
      VALUES (@id, @host, @pid, @role, @max_concurrent, @running, @now, @now)
      ON CONFLICT (id) DO UPDATE SET running = excluded.running, heartbeat_at = excluded.heartbeat_at, stopped_at = NULL`,
      { ...w, running: JSON.stringify(w.running), now },
    );
  }

  async stopped(id: string): Promise<void> {
    await this.db.run(`UPDATE workers SET stopped_at = ?, running = '[]' WHERE id = ?`, nowIso(), id);
  }

  /** Processes seen since `sinceIso`, newest heartbeat first. */
  async list(sinceIso: string): Promise<WorkerRow[]> {
    return (await this.db.all('SELECT * FROM workers WHERE heartbeat_at >= ? ORDER BY heartbeat_at DESC, id', sinceIso)) as WorkerRow[];
  }

  async purgeOlderThan(iso: string): Promise<number> {
    return (await this.db.run('DELETE FROM workers WHERE heartbeat_at < ?', iso)).changes;
  }
}
