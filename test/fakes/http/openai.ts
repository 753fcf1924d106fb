// Fake OpenAI embeddings endpoint with deterministic bag-of-words hashing vectors.
import { FakeServer, field, type FakeServerOptions, type Reply, type RouteRequest } from './base.js';

export interface FakeOpenAIOptions extends FakeServerOptions {
  /** Required bearer key; when unset any non-empty bearer key is accepted (a missing one is always 401). */
  apiKey?: string;
  /** Vector dimension (default 16); a request's `dimensions` field overrides it. */
  dimension?: number;
  /** word -> canonical word, applied (lowercased) before hashing, e.g. { database: 'postgres' }. */
  synonyms?: Record<string, string>;
}

/** 32-bit FNV-1a over the UTF-8 bytes of `s`. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Lowercases, splits on non-letters, maps synonyms, hashes each word into a bucket, then L2-normalizes. */
export function embedText(text: string, dimension = 16, synonyms: Record<string, string> = {}): number[] {
  const syn = new Map(Object.entries(synonyms).map(([k, v]) => [k.toLowerCase(), v.toLowerCase()]));
  const vec = new Array<number>(dimension).fill(0);
  for (const raw of text.toLowerCase().split(/[^\p{L}]+/u)) {
    if (!raw) continue;
    const word = syn.get(raw) ?? raw;
    const i = fnv1a(word) % dimension;
    vec[i] = (vec[i] ?? 0) + 1;
  }
  const norm = Math.sqrt(vec.reduce((s, x) => s + x * x, 0));
  return norm === 0 ? vec : vec.map((x) => x / norm);
}

export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** Float32 little-endian base64, as the real API returns for encoding_format=base64. */
export function toBase64Float32(vec: number[]): string {
  const buf = Buffer.alloc(vec.length * 4);
  vec.forEach((v, i) => buf.writeFloatLE(v, i * 4));
  return buf.toString('base64');
}

function oaiError(status: number, message: string, type: string, code: string | null): Reply {
  return { status, json: { error: { message, type, param: null, code } } };
}

export class FakeOpenAI extends FakeServer {
  readonly calls: Array<{ model: string; inputs: string[]; encoding_format: string | undefined }> = [];
  readonly dimension: number;
  synonyms: Record<string, string>;
  private readonly opts: FakeOpenAIOptions;

  constructor(opts: FakeOpenAIOptions = {}) {
    super(opts);
    this.opts = opts;
    this.dimension = opts.dimension ?? 16;
    this.synonyms = { ...(opts.synonyms ?? {}) };
    this.route('POST', '/v1/embeddings', (r) => this.embeddings(r));
    this.route('GET', '/v1/models', () => ({
      json: { object: 'list', data: [{ id: 'text-embedding-3-small', object: 'model', created: 0, owned_by: 'fake' }] },
    }));
  }

  /** The vector this fake returns for `text` (same dimension/synonyms as the server). */
  embed(text: string, dimension = this.dimension): number[] {
    return embedText(text, dimension, this.synonyms);
  }

  protected override guard(req: RouteRequest): Reply | undefined {
    const m = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? '').trim());
    if (m && (this.opts.apiKey === undefined || m[1] === this.opts.apiKey)) return undefined;
    return oaiError(401, 'Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key');
  }

  protected override failureBody(status: number): unknown {
    return {
      error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null, status },
    };
  }

  private embeddings(r: RouteRequest): Reply {
    const model = field(r.json, 'model');
    const input = field(r.json, 'input');
    const format = field(r.json, 'encoding_format');
    const dims = field(r.json, 'dimensions');
    if (typeof model !== 'string' || !model) return oaiError(400, 'you must provide a model parameter', 'invalid_request_error', null);
    const inputs =
      typeof input === 'string' ? [input] : Array.isArray(input) ? input.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))) : null;
    if (!inputs || inputs.length === 0 || inputs.some((s) => s === '')) {
      return oaiError(400, "'$.input' is invalid. Please check the API reference.", 'invalid_request_error', null);
    }
    if (format !== undefined && format !== 'float' && format !== 'base64') {
      return oaiError(400, `Invalid encoding_format: ${String(format)}`, 'invalid_request_error', null);
    }
    const dim = typeof dims === 'number' && dims > 0 ? dims : this.dimension;
    this.calls.push({ model, inputs, encoding_format: format as string | undefined });
    let tokens = 0;
    const data = inputs.map((text, index) => {
      tokens += text.split(/\s+/).filter(Boolean).length;
      const vec = this.embed(text, dim);
      return { object: 'embedding', index, embedding: format === 'base64' ? toBase64Float32(vec) : vec };
    });
    return { json: { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } } };
  }
}
