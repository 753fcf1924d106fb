import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pino, { type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createNoopMemory,
  createOpenAIEmbedder,
  createSurrealMemory,
  formatMemoriesForPrompt,
  type MemoryRecord,
  type MemoryStore,
  type NewMemory,
} from '../src/memory/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NS = { namespace: 'factory', database: 'memory' };
const tempDir = (): string => mkdtempSync(path.join(tmpdir(), 'factory-memory-'));

function captureLogger(): { logger: Logger; text: () => string } {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  return { logger, text: () => lines.join('') };
}
const quiet = (): Logger => pino({ level: 'silent' });

const mem = (repo: string, title: string, content: string, extra: Partial<NewMemory> = {}): NewMemory => ({
  repo,
  task_id: 1,
  agent_type: 'coder',
  kind: 'learning',
  title,
  content,
  ...extra,
});

// Deterministic decoys: words drawn from a vocabulary that shares nothing with the test queries.
const VOCAB = (
  'webpack bundle cache eslint prettier docker image layer kubernetes helm chart react component render state redux ' +
  'jest mock fixture typescript generic enum python venv poetry makefile cron schedule logging metrics grafana alert ' +
  'oauth token refresh cookie session csv export unicode encoding locale timezone pagination cursor graphql resolver ' +
  'css flexbox grid font icon svg terraform bucket lambda queue worker retry backoff header footer sidebar modal'
).split(' ');

function decoys(count: number, repos: string[]): NewMemory[] {
  let seed = 42;
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const words = (n: number): string => Array.from({ length: n }, () => VOCAB[Math.floor(next() * VOCAB.length)]!).join(' ');
  return Array.from({ length: count }, (_, i) => mem(repos[i % repos.length]!, `Note ${words(3)}`, `${words(12)}.`, { task_id: 100 + i }));
}

async function seed(store: MemoryStore, items: NewMemory[]): Promise<MemoryRecord[]> {
  const out: MemoryRecord[] = [];
  for (const item of items) {
    const rec = await store.add(item);
    if (!rec) throw new Error(`add failed: ${JSON.stringify(store.health())}`);
    out.push(rec);
  }
  return out;
}

describe('memory store on mem:// (full text only)', () => {
  const store = createSurrealMemory({ url: 'mem://', ...NS, dataDir: tempDir(), logger: quiet() });
  let target: MemoryRecord;
  let pnpmHere: MemoryRecord;
  let pnpmThere: MemoryRecord;

  beforeAll(async () => {
    await store.init();
    expect(store.health()).toEqual({ status: 'ok', backend: 'embedded', vectors: false });
    await seed(store, decoys(60, ['acme/api', 'acme/web', 'other/lib']));
    await seed(store, [mem('acme/api', 'Port forwarding for the docker image', 'Expose the port in the compose file.')]);
    target = (await store.add(
      mem(
        'acme/api',
        'Flaky CI from port collisions',
        'Integration tests failed at random because two suites bound the same port; give each worker its own port range.',
        { kind: 'gotcha', tags: ['ci'] },
      ),
    ))!;
    pnpmHere = (await store.add(
      mem('acme/api', 'Use pnpm workspaces', 'npm install rewrites the pnpm lockfile; always run pnpm install.'),
    ))!;
    pnpmThere = (await store.add(
      mem('other/repo', 'Use pnpm workspaces', 'npm install rewrites the pnpm lockfile; always run pnpm install.'),
    ))!;
  });
  afterAll(() => store.close());

  it('returns well-formed records', () => {
    expect(target.id).toMatch(/^memory:[A-Za-z0-9_]+$/);
    expect(target.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(target).toMatchObject({ repo: 'acme/api', task_id: 1, agent_type: 'coder', kind: 'gotcha', tags: ['ci'] });
  });

  it('recalls the relevant memory first among 60+ decoys', async () => {
    const hits = await store.recall({ repo: 'acme/api', text: 'Why is CI flaky? Port collision between test suites' });
    expect(hits.length).toBeGreaterThan(0);
    expect(hits.length).toBeLessThanOrEqual(5);
    expect(hits[0]!.id).toBe(target.id);
    expect(hits[0]!.score).toBeGreaterThan(0);
    expect(hits.map((h) => h.title)).toContain('Port forwarding for the docker image');
  });

  it('ranks the same repo above an equally relevant memory of another repo, which still appears', async () => {
    const hits = await store.recall({ repo: 'acme/api', text: 'pnpm lockfile', limit: 5 });
    expect(hits.slice(0, 2).map((h) => h.id)).toEqual([pnpmHere.id, pnpmThere.id]);
    const other = await store.recall({ repo: 'other/repo', text: 'pnpm lockfile' });
    expect(other.slice(0, 2).map((h) => h.id)).toEqual([pnpmThere.id, pnpmHere.id]);
  });

  it('falls back to the newest memories of the repo when the text has no words', async () => {
    const hits = await store.recall({ repo: 'acme/api', text: ' ?!… ', limit: 3 });
    expect(hits.map((h) => h.id)).toEqual([pnpmHere.id, target.id, hits[2]!.id]);
    expect(hits.every((h) => h.repo === 'acme/api')).toBe(true);
  });

  it('searches with and without q', async () => {
    const newest = await store.search({});
    expect(newest).toHaveLength(20);
    expect(newest[0]!.id).toBe(pnpmThere.id);
    const stamps = newest.map((r) => r.created_at);
    expect([...stamps].sort().reverse()).toEqual(stamps);
    const web = await store.search({ repo: 'acme/web', limit: 500 });
    expect(web).toHaveLength(20);
    expect(web.every((r) => r.repo === 'acme/web')).toBe(true);
    const pnpm = await store.search({ q: 'PNPM' });
    expect(pnpm.map((r) => r.id).sort()).toEqual([pnpmHere.id, pnpmThere.id].sort());
    expect(pnpm.every((r) => (r.score ?? 0) > 0)).toBe(true);
    expect((await store.search({ q: 'pnpm', repo: 'other/repo' })).map((r) => r.id)).toEqual([pnpmThere.id]);
    expect(await store.search({ q: '%%%' })).toEqual([]);
    expect(await store.search({ q: "'; DELETE memory; --" })).toEqual([]);
    expect(await store.search({ limit: 2 })).toHaveLength(2);
  });

  it('forgets by id, and rejects malformed ids without throwing', async () => {
    const doomed = (await store.add(mem('acme/api', 'Temporary zebra note', 'zebra crossing')))!;
    const bare = (await store.add(mem('acme/api', 'Second zebra note', 'zebra stripes')))!;
    expect(await store.search({ q: 'zebra' })).toHaveLength(2);
    expect(await store.forget(doomed.id)).toBe(true);
    expect(await store.forget(bare.id.slice('memory:'.length))).toBe(true);
    expect(await store.search({ q: 'zebra' })).toEqual([]);
    expect(await store.forget(doomed.id)).toBe(false);
    for (const bad of ['', 'memory:', 'task:abc', 'memory:a b', "memory:x'); DELETE memory; --", 'memory:⟨x⟩', 'x'.repeat(65)]) {
      expect(await store.forget(bad)).toBe(false);
    }
    expect(await store.forget(42 as unknown as string)).toBe(false);
    expect((await store.search({ limit: 200 })).length).toBe(64);
    expect(store.health().status).toBe('ok');
  });

  it('refuses invalid input without degrading', async () => {
    expect(await store.add({ ...mem('acme/api', 't', 'c'), kind: 'bogus' as 'learning' })).toBeNull();
    expect(await store.add(mem('  ', 't', 'c'))).toBeNull();
    expect(await store.add(mem('acme/api', 't', 'c', { task_id: 1.5 }))).toBeNull();
    expect(store.health().status).toBe('ok');
  });
});

describe('formatMemoriesForPrompt', () => {
  const rec = (i: number, content: string): MemoryRecord => ({
    id: `memory:m${i}`,
    repo: 'acme/api',
    task_id: i,
    agent_type: 'coder',
    kind: 'learning',
    title: `Title ${i}`,
    content,
    tags: [],
    created_at: '2025-01-01T00:00:00.000Z',
  });

  it('renders one bullet per memory and nothing for no memories', () => {
    expect(formatMemoriesForPrompt([])).toBe('');
    const out = formatMemoriesForPrompt([rec(1, '  spaced \n\n out  '), { ...rec(2, 'x'), task_id: null, kind: 'gotcha' }]);
    expect(out).toBe(
      '## Relevant memories from earlier tasks\n\n' +
        '- **[learning] Title 1** (acme/api, task #1): spaced out\n' +
        '- **[gotcha] Title 2** (acme/api): x',
    );
  });

  it('stays under the size cap and says what it cut', () => {
    const records = Array.from({ length: 40 }, (_, i) => rec(i, 'lorem ipsum dolor sit amet '.repeat(10 + i)));
    for (const cap of [300, 1000, 4000]) {
      const out = formatMemoriesForPrompt(records, cap);
      expect(out.length).toBeLessThanOrEqual(cap);
      expect(out.startsWith('## Relevant memories from earlier tasks')).toBe(true);
      expect(out.split('\n').at(-1)).toMatch(/^- … \d+ more memories omitted \(size limit\)$/);
      const shown = out.split('\n').filter((l) => l.startsWith('- **')).length;
      expect(out).toContain(`${40 - shown} more memories omitted`);
    }
    expect(formatMemoriesForPrompt(records).length).toBeLessThanOrEqual(4000);
    expect(formatMemoriesForPrompt(records, 20)).toBe('');
  });
});

// A fake OpenAI embeddings endpoint: hashed bag of words with synonyms, L2-normalised.
const DIM = 256;
const SYNONYMS: Record<string, string> = Object.fromEntries([
  ...['postgres', 'postgresql', 'db', 'database', 'databases', 'sql'].map((w) => [w, 'database']),
  ...['stall', 'stalls', 'hang', 'hangs', 'timeout', 'timeouts'].map((w) => [w, 'timeout']),
  ...['rollout', 'rollouts', 'deploy', 'migration', 'migrations'].map((w) => [w, 'migration']),
]);
const STOP = new Set('a an the to of in on for and or is are be so before after during with when'.split(' '));

function fakeEmbedding(text: string): number[] {
  const v = new Array<number>(DIM).fill(0);
  for (const word of text.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
    if (STOP.has(word)) continue;
    const term = SYNONYMS[word] ?? word;
    let h = 2166136261;
    for (const ch of term) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
    v[h % DIM]! += 1;
  }
  const norm = Math.hypot(...v) || 1;
  return v.map((x) => x / norm);
}

function startFakeEmbeddings(): Promise<{ server: Server; baseURL: string; bodies: unknown[] }> {
  const bodies: unknown[] = [];
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      const body = JSON.parse(raw || '{}') as { input?: string[]; model?: string; encoding_format?: string };
      bodies.push(body);
      if (req.method !== 'POST' || req.url !== '/v1/embeddings' || body.encoding_format !== 'float') {
        res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"bad request"}}');
        return;
      }
      const data = (body.input ?? []).map((t, index) => ({ object: 'embedding', index, embedding: fakeEmbedding(t) }));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data, model: body.model, usage: { prompt_tokens: 0, total_tokens: 0 } }));
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({ server, baseURL: `http://127.0.0.1:${port}/v1`, bodies });
    }),
  );
}

describe('memory with embeddings (fake OpenAI server)', () => {
  const corpus = [
    ...decoys(50, ['acme/api', 'other/lib']),
    mem('other/lib', 'Feature flag rollout checklist', 'Ship behind a flag, watch the error dashboards, then ramp up.'),
  ];
  const synonym = mem(
    'acme/api',
    'Database migrations need a lock timeout',
    'Set lock_timeout before running schema migrations so a blocked ALTER fails fast.',
  );
  const query = { repo: 'acme/api', text: 'postgres stalls during rollout' };
  let fake: Awaited<ReturnType<typeof startFakeEmbeddings>>;
  let plain: MemoryStore;
  let vector: MemoryStore;
  const logs = captureLogger();

  beforeAll(async () => {
    fake = await startFakeEmbeddings();
    plain = createSurrealMemory({ url: 'mem://', ...NS, dataDir: tempDir(), logger: quiet() });
    const embeddings = createOpenAIEmbedder({ apiKey: 'sk-test-123', baseURL: fake.baseURL, model: 'fake-hash', timeoutMs: 2000 });
    vector = createSurrealMemory({ url: 'mem://', ...NS, dataDir: tempDir(), embeddings, logger: logs.logger });
    await Promise.all([plain.init(), vector.init()]);
    for (const store of [plain, vector]) await seed(store, [...corpus, synonym]);
  });
  afterAll(async () => {
    await Promise.all([plain.close(), vector.close()]);
    fake.server.closeAllConnections();
    await new Promise((resolve) => fake.server.close(resolve));
  });

  it('sizes the vector index by probing the embedder, asking for float vectors', () => {
    expect(vector.health()).toEqual({ status: 'ok', backend: 'embedded', vectors: true });
    expect(fake.bodies[0]).toEqual({ model: 'fake-hash', input: ['dimension probe'], encoding_format: 'float' });
  });

  it('finds a synonym-only match only when vectors are on', async () => {
    const withoutVectors = await plain.recall(query);
    expect(withoutVectors.map((h) => h.title)).toEqual(['Feature flag rollout checklist']);
    const withVectors = await vector.recall(query);
    expect(withVectors[0]!.title).toBe(synonym.title);
    expect(withVectors.map((h) => h.title)).toContain('Feature flag rollout checklist');
  });

  it('answers from BM25 alone when the embeddings server is down', async () => {
    fake.server.closeAllConnections();
    await new Promise((resolve) => fake.server.close(resolve));
    const hits = await vector.recall(query);
    expect(hits.map((h) => h.title)).toEqual(['Feature flag rollout checklist']);
    expect(vector.health()).toMatchObject({ status: 'degraded', vectors: true, error: expect.stringMatching(/^embeddings unavailable/) });
    expect(await vector.add(mem('acme/api', 'Stored while embeddings are down', 'still searchable by words'))).not.toBeNull();
    expect((await vector.search({ q: 'searchable' })).map((r) => r.title)).toEqual(['Stored while embeddings are down']);
    expect(logs.text()).toContain('embedding failed; using full-text search only');
    expect(logs.text()).not.toContain('sk-test-123');
  });
});

describe('memory connection failures', () => {
  it('degrades quickly on an unreachable remote and never throws or logs the password', async () => {
    const logs = captureLogger();
    const started = Date.now();
    const store = createSurrealMemory({
      url: 'ws://127.0.0.1:1/rpc',
      user: 'root',
      pass: 'hunter2-secret',
      ...NS,
      dataDir: tempDir(),
      connectTimeoutMs: 2000,
      logger: logs.logger,
    });
    await store.init();
    expect(store.health()).toMatchObject({ status: 'degraded', backend: 'remote', vectors: false, error: expect.any(String) });
    expect(await store.add(mem('acme/api', 't', 'c'))).toBeNull();
    expect(await store.recall({ repo: 'acme/api', text: 'anything' })).toEqual([]);
    expect(await store.search({ q: 'anything' })).toEqual([]);
    expect(await store.forget('memory:abc')).toBe(false);
    await store.close();
    expect(Date.now() - started).toBeLessThan(2900);
    expect(logs.text()).toContain('memory store unavailable');
    expect(logs.text()).not.toContain('hunter2-secret');
  });

  it('gives up after connectTimeoutMs on a server that never answers', async () => {
    const sockets = new Set<Socket>();
    const tcp = createTcpServer((s) => void sockets.add(s));
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const { port } = tcp.address() as { port: number };
    try {
      const started = Date.now();
      const store = createSurrealMemory({
        url: `http://127.0.0.1:${port}`,
        ...NS,
        dataDir: tempDir(),
        connectTimeoutMs: 300,
        logger: quiet(),
      });
      await store.init();
      expect(Date.now() - started).toBeLessThan(2000);
      expect(store.health()).toMatchObject({ status: 'degraded', error: expect.stringContaining('timed out') });
      expect(await store.recall({ repo: 'r', text: 'x' })).toEqual([]);
      await store.close();
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => tcp.close(resolve));
    }
  });

  it('reports a bad url as degraded', async () => {
    const store = createSurrealMemory({ url: 'ftp://example.invalid', ...NS, dataDir: tempDir(), logger: quiet() });
    await store.init();
    expect(store.health()).toMatchObject({ status: 'degraded', error: expect.stringContaining('unsupported') });
    expect(await store.search({})).toEqual([]);
  });

  it('has a disabled no-op store', async () => {
    const store = createNoopMemory();
    await store.init();
    expect(store.health()).toEqual({ status: 'disabled', backend: 'none', vectors: false });
    expect(await store.add(mem('r', 't', 'c'))).toBeNull();
    expect(await store.recall({ repo: 'r', text: 't' })).toEqual([]);
  });
});

describe('embedded surrealkv store', () => {
  const run = promisify(execFile);
  /** Runs `body` in a fresh node process with a store on `dataDir`; prints its JSON result. */
  async function inChild(dataDir: string, body: string): Promise<unknown> {
    const script = path.join(tempDir(), 'child.mts');
    const entry = pathToFileURL(path.join(ROOT, 'src/memory/index.ts')).href;
    writeFileSync(
      script,
      `import { createSurrealMemory } from ${JSON.stringify(entry)};
       const logger = { child() { return logger; }, info() {}, warn() {}, debug() {}, error() {} };
       const store = createSurrealMemory({ namespace: 'factory', database: 'memory', dataDir: ${JSON.stringify(dataDir)}, connectTimeoutMs: 5000, logger });
       await store.init();
       const result = await (async () => { ${body} })();
       await store.close();
       process.stdout.write(JSON.stringify(result));
       process.exit(0);`,
    );
    const { stdout } = await run(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, timeout: 30_000 });
    return JSON.parse(stdout);
  }

  it('persists across close and reopen in the same process', async () => {
    const dataDir = tempDir();
    const first = createSurrealMemory({ ...NS, dataDir, logger: quiet() });
    await first.init();
    expect(first.health()).toEqual({ status: 'ok', backend: 'embedded', vectors: false });
    const saved = await first.add(mem('acme/api', 'Kept on disk', 'the quokka survives restarts'));
    await first.close();
    const second = createSurrealMemory({ ...NS, dataDir, logger: quiet() });
    await second.init();
    expect(second.health().status).toBe('ok');
    expect((await second.recall({ repo: 'acme/api', text: 'quokka restarts' })).map((r) => r.id)).toEqual([saved!.id]);
    await second.close();
  });

  it('drops stored vectors when the embedding model changes', async () => {
    const dataDir = tempDir();
    const fixed = (model: string, dimensions: number) => ({
      model,
      dimensions,
      embed: async (texts: string[]) => texts.map(() => Array.from({ length: dimensions }, (_, i) => (i === 0 ? 1 : 0))),
    });
    const first = createSurrealMemory({ ...NS, dataDir, embeddings: fixed('model-a', 3), logger: quiet() });
    await first.init();
    const kept = await first.add(mem('acme/api', 'Vector note', 'the okapi'));
    await first.close();
    const logs = captureLogger();
    const second = createSurrealMemory({ ...NS, dataDir, embeddings: fixed('model-b', 4), logger: logs.logger });
    await second.init();
    expect(second.health()).toEqual({ status: 'ok', backend: 'embedded', vectors: true });
    expect(logs.text()).toContain('embedding model changed; dropping stored vectors');
    expect((await second.recall({ repo: 'acme/api', text: 'okapi' })).map((r) => r.id)).toEqual([kept!.id]);
    expect(await second.add(mem('acme/api', 'New vector note', 'the tapir'))).not.toBeNull();
    expect((await second.recall({ repo: 'acme/api', text: 'tapir' }))[0]!.title).toBe('New vector note');
    expect(second.health().status).toBe('ok');
    await second.close();
  });

  it('persists on disk for another process, which reports a held lock as degraded', async () => {
    const dataDir = tempDir();
    const written = (await inChild(
      dataDir,
      `return (await store.add({ repo: 'acme/api', task_id: 7, agent_type: 'coder', kind: 'decision', title: 'Written by a child', content: 'the wombat was here' })).id;`,
    )) as string;
    expect(written).toMatch(/^memory:/);
    const store = createSurrealMemory({ ...NS, dataDir, logger: quiet() });
    await store.init();
    try {
      const hits = await store.recall({ repo: 'acme/api', text: 'wombat' });
      expect(hits.map((h) => [h.id, h.kind, h.task_id])).toEqual([[written, 'decision', 7]]);
      const health = (await inChild(dataDir, 'return store.health();')) as { status: string; error: string };
      expect(health).toMatchObject({ status: 'degraded', error: expect.stringContaining('locked') });
    } finally {
      await store.close();
    }
  });
});
