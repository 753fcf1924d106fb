import type OpenAI from 'openai';

/** Turns texts into vectors (one per text, same order). */
export interface Embedder {
  model: string;
  /** Vector length when known up front; otherwise the store probes it once at init. */
  dimensions?: number;
  embed(texts: string[]): Promise<number[][]>;
}

export interface OpenAIEmbedderOptions {
  apiKey: string;
  /** e.g. "https://api.openai.com/v1" or a compatible server; the SDK posts to `${baseURL}/embeddings`. */
  baseURL?: string;
  model?: string;
  timeoutMs?: number;
  /** Ask the API for shortened vectors (text-embedding-3-* only). */
  dimensions?: number;
}

const KNOWN_DIMENSIONS: Record<string, number> = {
  'text-embedding-3-small': 1536,
  'text-embedding-3-large': 3072,
  'text-embedding-ada-002': 1536,
};

export function createOpenAIEmbedder(opts: OpenAIEmbedderOptions): Embedder {
  const model = opts.model ?? 'text-embedding-3-small';
  // The SDK is imported at the first embedding, so a process that never embeds never loads it.
  let client: Promise<OpenAI> | undefined;
  const openai = () =>
    (client ??= import('openai').then(
      ({ default: OpenAI }) =>
        new OpenAI({
          apiKey: opts.apiKey,
          ...(opts.baseURL ? { baseURL: opts.baseURL } : {}),
          maxRetries: 1,
          timeout: opts.timeoutMs ?? 10_000,
        }),
    ));
  const dimensions = opts.dimensions ?? KNOWN_DIMENSIONS[model];
  return {
    model,
    ...(dimensions ? { dimensions } : {}),
    async embed(texts: string[]): Promise<number[][]> {
      if (texts.length === 0) return [];
      const res = await (
        await openai()
      ).embeddings.create({
        model,
        input: texts,
        // Without this the SDK asks for base64 and silently yields [] from servers that answer with floats.
        encoding_format: 'float',
        ...(opts.dimensions ? { dimensions: opts.dimensions } : {}),
      });
      const rows = [...res.data].sort((a, b) => a.index - b.index);
      if (rows.length !== texts.length) {
        throw new Error(`embeddings: asked for ${texts.length} vectors, got ${rows.length}`);
      }
      return rows.map((row, i) => {
        const v = row.embedding;
        if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
          throw new Error(`embeddings: vector ${i} is empty or not numeric`);
        }
        return v;
      });
    },
  };
}
