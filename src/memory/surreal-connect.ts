/**
 * Opening SurrealDB clients for the memory store: embedded (mem://, surrealkv://) or remote (ws/http),
 * always bounded by our own deadline, because the SDK's connect() can stay pending forever.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Surreal, Engines } from 'surrealdb';

export type Backend = 'embedded' | 'remote';

export interface ConnectTarget {
  backend: Backend;
  /** URL handed to the SDK. */
  url: string;
  /** URL safe to log (no credentials). */
  display: string;
}

export interface OpenOptions {
  target: ConnectTarget;
  namespace: string;
  database: string;
  user?: string;
  pass?: string;
  timeoutMs: number;
  /** Called when the URL had to be changed (ws → http on a Node without WebSocket). */
  onNotice?: (message: string) => void;
}

export interface Connection {
  db: Surreal;
  /**
   * Give the client back. `pinned` means this process created an index on it; the embedded engine then keeps
   * its datastore (and the directory lock) alive even after close(), so the client is kept for reuse instead.
   */
  release(pinned: boolean): Promise<void>;
}

const EMBEDDED_SCHEMES = new Set(['mem', 'surrealkv', 'surrealkv+versioned', 'rocksdb']);
const REMOTE_SCHEMES = new Set(['ws', 'wss', 'http', 'https']);
const LOCK_RETRY_MS = 2000;

export function errorText(err: unknown): string {
  let text = err instanceof Error ? err.message : String(err);
  const cause = err instanceof Error ? err.cause : undefined;
  if (cause !== undefined) {
    const causeText = cause instanceof Error ? cause.message : String(cause);
    if (causeText && !text.includes(causeText)) text += `: ${causeText}`;
  }
  // Provider errors may quote (masked) API keys; keep even those out of logs and health output.
  return text.replace(/\bsk-[\w*.-]+/g, 'sk-***');
}

/** Decide where the store lives: '' → surrealkv://<abs dataDir>/memory, otherwise the given URL. */
export function resolveTarget(url: string | undefined, dataDir: string): ConnectTarget {
  const raw = (url ?? '').trim();
  if (raw === '') {
    const dir = path.resolve(dataDir, 'memory');
    const full = `surrealkv://${dir}`;
    return { backend: 'embedded', url: full, display: full };
  }
  const parsed = new URL(raw);
  const scheme = parsed.protocol.replace(/:$/, '');
  if (EMBEDDED_SCHEMES.has(scheme)) return { backend: 'embedded', url: raw, display: raw };
  if (!REMOTE_SCHEMES.has(scheme)) throw new Error(`unsupported memory url scheme "${scheme}:"`);
  parsed.username = '';
  parsed.password = '';
  return { backend: 'remote', url: raw, display: parsed.toString() };
}

export function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), Math.max(0, ms));
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** A client whose embedded engines report their startup errors to `onEngineError` (the SDK drops them). */
async function makeClient(onEngineError: (err: Error) => void): Promise<Surreal> {
  // The SDK and its native engine load at the first connection (after the port is bound), and never
  // when memory is disabled.
  const [{ Surreal, createRemoteEngines }, { createNodeEngines }] = await Promise.all([import('surrealdb'), import('@surrealdb/node')]);
  const engines: Engines = { ...createRemoteEngines() };
  for (const [scheme, factory] of Object.entries(createNodeEngines())) {
    engines[scheme] = (ctx) => {
      const engine = factory(ctx);
      engine.subscribe('error', (err) => onEngineError(err));
      return engine;
    };
  }
  return new Surreal({ engines });
}

async function connectOnce(url: string, opts: OpenOptions, deadline: number): Promise<Surreal> {
  let reportEngineError: (err: Error) => void = () => {};
  const engineFailed = new Promise<never>((_, reject) => {
    reportEngineError = reject;
  });
  engineFailed.catch(() => {}); // may fire after we stopped listening
  const db = await makeClient((err) => reportEngineError(err));
  const auth = opts.user ? { username: opts.user, password: opts.pass ?? '' } : undefined;
  try {
    const connecting = db.connect(url, {
      namespace: opts.namespace,
      database: opts.database,
      ...(auth ? { authentication: auth } : {}),
    });
    await withTimeout(Promise.race([connecting, engineFailed]), deadline - Date.now(), `connecting to ${opts.target.display} timed out`);
    return db;
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
}

async function connectWithDeadline(url: string, opts: OpenOptions): Promise<Surreal> {
  const start = Date.now();
  const deadline = start + opts.timeoutMs;
  let backoff = 20;
  for (;;) {
    try {
      return await connectOnce(url, opts, deadline);
    } catch (err) {
      // The embedded engine frees its directory lock a few ms after close(): retry briefly. Another process
      // holding the lock keeps failing, and we give up with its message.
      const locked = /already locked/i.test(errorText(err));
      const retryUntil = Math.min(deadline, start + LOCK_RETRY_MS);
      if (!locked || Date.now() + backoff >= retryUntil) throw err;
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, 200);
    }
  }
}

interface SharedClient {
  db: Surreal;
  users: number;
  pinned: boolean;
  namespace: string;
  database: string;
}

/** Embedded on-disk clients of this process, by URL (see Connection.release). */
const sharedEmbedded = new Map<string, SharedClient>();

async function openShared(opts: OpenOptions): Promise<Connection> {
  const key = opts.target.url;
  let entry = sharedEmbedded.get(key);
  if (entry) {
    if (entry.users > 0 && (entry.namespace !== opts.namespace || entry.database !== opts.database)) {
      throw new Error(`${opts.target.display} is already open in this process with another namespace/database`);
    }
    await withTimeout(
      entry.db.use({ namespace: opts.namespace, database: opts.database }),
      opts.timeoutMs,
      'selecting namespace/database timed out',
    );
    entry.namespace = opts.namespace;
    entry.database = opts.database;
  } else {
    const dir = new URL(key).pathname;
    if (dir) await mkdir(path.dirname(dir), { recursive: true });
    const db = await connectWithDeadline(key, opts);
    entry = { db, users: 0, pinned: false, namespace: opts.namespace, database: opts.database };
    sharedEmbedded.set(key, entry);
  }
  entry.users += 1;
  const shared = entry;
  let released = false;
  return {
    db: shared.db,
    async release(pinned: boolean): Promise<void> {
      if (released) return;
      released = true;
      shared.pinned ||= pinned;
      shared.users -= 1;
      if (shared.users > 0 || shared.pinned) return;
      sharedEmbedded.delete(key);
      await shared.db.close();
    },
  };
}

export async function openConnection(opts: OpenOptions): Promise<Connection> {
  const { target } = opts;
  const scheme = new URL(target.url).protocol.replace(/:$/, '');
  if (target.backend === 'embedded' && scheme !== 'mem') return openShared(opts);

  let url = target.url;
  if (/^wss?$/.test(scheme) && typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'undefined') {
    // Node 20 has no global WebSocket and the SDK would throw from inside its socket loop; the HTTP RPC
    // endpoint (same host and port) speaks the same protocol over fetch.
    url = url.replace(/^ws/, 'http');
    opts.onNotice?.('this Node has no WebSocket; using the HTTP RPC endpoint of the memory server instead');
  }
  const db = await connectWithDeadline(url, opts);
  if (target.backend === 'remote') {
    try {
      const { version } = await withTimeout(db.version(), opts.timeoutMs, 'version check timed out');
      const major = Number(/(\d+)\./.exec(version)?.[1] ?? 0);
      if (major < 3) throw new Error(`SurrealDB ${version} is too old: memory needs 3.x (FULLTEXT/HNSW syntax)`);
    } catch (err) {
      await db.close().catch(() => {});
      throw err;
    }
  }
  let released = false;
  return {
    db,
    async release(): Promise<void> {
      if (released) return;
      released = true;
      await db.close();
    },
  };
}
