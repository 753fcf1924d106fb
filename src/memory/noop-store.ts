import type { MemoryHealth, MemoryRecord, MemoryStore } from './types.js';

/** The store used when memory is turned off: accepts every call and remembers nothing. */
export function createNoopMemory(): MemoryStore {
  return {
    async init(): Promise<void> {},
    async add(): Promise<MemoryRecord | null> {
      return null;
    },
    async recall(): Promise<MemoryRecord[]> {
      return [];
    },
    async search(): Promise<MemoryRecord[]> {
      return [];
    },
    async forget(): Promise<boolean> {
      return false;
    },
    health(): MemoryHealth {
      return { status: 'disabled', backend: 'none', vectors: false };
    },
    async close(): Promise<void> {},
  };
}
