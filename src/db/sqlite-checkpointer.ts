import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * Copies the SQLite write-ahead log back into the database file on a thread of its own.
 *
 * Why: SQLite checkpoints inside the commit that crosses `wal_autocheckpoint` pages, on the
 * connection that commits, and better-sqlite3 runs on the event loop. Under a flood of agent output
 * that was 60% of the time spent storing it (a 4 MB copy and fsync every ~250 log rows). With the
 * main connection's automatic checkpoints off, this thread's own connection runs PASSIVE checkpoints
 * (they never block a writer or a reader) whenever `data_version` says another connection committed.
 * If the thread fails, the main connection's automatic checkpoints come back on: the log never grows
 * without bound.
 *
 * The worker's source is a string (eval) so it needs no build step of its own and runs the same from
 * src/ under tsx, from dist/ and from the bundle; better-sqlite3 is resolved here and passed in.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.modulePath);
const db = new Database(workerData.file);
db.pragma('synchronous = NORMAL');
let seen = -1; // commits made before this thread started are checkpointed at its first tick
const timer = setInterval(() => {
  const now = db.pragma('data_version', { simple: true });
  if (now === seen) return;
  seen = now;
  db.pragma('wal_checkpoint(PASSIVE)');
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m !== 'close') return;
  clearInterval(timer);
  db.close();
  parentPort.postMessage('closed');
});
`;

export interface Checkpointer {
  close(): Promise<void>;
}

/**
 * Starts the checkpoint thread for `file`; `onFailure` runs (once) when it stops working, after
 * which the caller checkpoints on its own again.
 */
export function startCheckpointer(file: string, onFailure: (err: Error) => void, intervalMs = 200): Checkpointer {
  const modulePath = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, modulePath, intervalMs } });
  worker.unref(); // an idle checkpointer never keeps the process alive
  let closing = false;
  let failed = false;
  const fail = (err: Error) => {
    if (closing || failed) return;
    failed = true;
    onFailure(err);
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`checkpoint thread exited with code ${code}`)));
  return {
    async close() {
      if (closing) return;
      closing = true;
      if (failed) return;
      // Let it close its connection (a clean close, not a killed thread); give up after a second.
      const closed = new Promise<void>((resolve) => {
        worker.on('message', (m) => m === 'closed' && resolve());
        worker.once('exit', () => resolve());
        setTimeout(resolve, 1000).unref();
      });
      worker.postMessage('close');
      await closed;
      await worker.terminate();
    },
  };
}
