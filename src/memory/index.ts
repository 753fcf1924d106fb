export * from './types.js';
export { createSurrealMemory, type SurrealMemoryOptions } from './surreal-store.js';
export { createOpenAIEmbedder, type Embedder, type OpenAIEmbedderOptions } from './embeddings.js';
export { formatMemoriesForPrompt } from './format.js';
export { createNoopMemory } from './noop-store.js';
