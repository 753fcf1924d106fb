// Connects agent memory to task execution: recall before a run, remember after it.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { PromptSource, RunRecorder, RunReport } from '../orchestrator/types.js';
import { createNoopMemory } from './noop-store.js';
import { createSurrealMemory } from './surreal-store.js';
import { createOpenAIEmbedder } from './embeddings.js';
import { formatMemoriesForPrompt } from './format.js';
import type { MemoryStore, NewMemory } from './types.js';
import { truncate } from '../agents/prompt.js';
import { DeliveryError, type OutboxWorker } from '../integrations/outbox.js';
import { scrubDeep } from '../secrets.js';
import { normaliseMemory } from './validate.js';

/** Outbox channel of memories waiting to be stored. */
export const MEMORY_CHANNEL = 'memory';

/** Embedded SurrealDB under data_dir by default; a remote server when SURREALDB_URL is set; off when memory.enabled is false. */
export function createMemoryFromConfig(config: Config, logger: Logger, urlOverride?: string): MemoryStore {
  if (!config.memory.enabled) return createNoopMemory();
  const { secrets, memory } = config;
  return createSurrealMemory({
    url: urlOverride ?? secrets.surrealUrl,
    user: secrets.surrealUser || undefined,
    pass: secrets.surrealPass || undefined,
    namespace: memory.namespace,
    database: memory.database,
    dataDir: config.data_dir,
    embeddings: secrets.openaiApiKey
      ? createOpenAIEmbedder({ apiKey: secrets.openaiApiKey, model: memory.embedding_model, baseURL: memory.openai_base_url || undefined })
      : null,
    logger,
  });
}

/** What a finished run leaves in memory: its outcome, and each learning the agent reported. */
export function memoriesFromRun(r: RunReport): NewMemory[] {
  const t = r.task;
  const base = { repo: t.repo, task_id: t.id, agent_type: t.agent_type };
  const outcome =
    r.status === 'failed' ? `Failed: ${truncate(r.run.error, 800)}` : r.status === 'in_review' ? 'Opened a pull request.' : 'Completed.';
  const summary = typeof r.handoff?.summary === 'string' ? r.handoff.summary : r.finalText;
  const out: NewMemory[] = [
    {
      ...base,
      kind: 'outcome',
      title: t.title.slice(0, 300),
      content: truncate(`${outcome}\n${summary}`.trim(), 2000),
      tags: [t.agent_type, r.status],
    },
  ];
  for (const l of r.learnings) {
    out.push({
      ...base,
      kind: /gotcha|careful|beware|don't|do not|never/i.test(l) ? 'gotcha' : 'learning',
      title: truncate(l.split('\n')[0]!, 200),
      content: truncate(l, 2000),
      tags: [t.agent_type],
    });
  }
  return out;
}

export interface MemoryAttachment {
  memory: MemoryStore;
  outbox: OutboxWorker;
  maxPromptChars: number;
  logger: Logger;
}

/**
 * Recall goes into each fresh prompt. What a run teaches is queued in the outbox, not written
 * straight to the store: a SurrealDB that is down or hanging when a task ends must not lose what the
 * task learned, so the rows wait (in one order key, so a hanging store holds one delivery slot, not
 * all of them) and are stored once each when it answers again.
 */
export function attachMemory(d: MemoryAttachment): { promptSources: PromptSource[]; recorders: RunRecorder[] } {
  const { memory, outbox, maxPromptChars, logger } = d;
  if (memory.health().status === 'disabled') return { promptSources: [], recorders: [] };
  const recall: PromptSource = async (task, { resume }) => {
    if (resume) return undefined; // the session already holds what was recalled
    const records = await memory.recall({ repo: task.repo, text: `${task.title}\n${task.description}`, limit: 8 });
    return formatMemoriesForPrompt(records, maxPromptChars);
  };
  outbox.register(MEMORY_CHANNEL, async (m: NewMemory) => {
    if (await memory.add(m)) return;
    throw new DeliveryError(`memory store unavailable: ${memory.health().error ?? 'no answer'}`);
  });
  const remember: RunRecorder = async (r) => {
    if (r.status === 'queued' || r.status === 'waiting_for_input') return;
    for (const [i, m] of memoriesFromRun(r).entries()) {
      const checked = normaliseMemory(m);
      if ('error' in checked) {
        logger.warn({ taskId: r.task.id, err: checked.error }, 'memory not stored: invalid');
        continue;
      }
      // Scrubbed before it is written to the outbox table: the queue is stored too.
      await outbox.enqueue(MEMORY_CHANNEL, scrubDeep(checked.value), { orderKey: 'memory:store', dedupeKey: `memory:run:${r.runId}:${i}` });
    }
  };
  return { promptSources: [recall], recorders: [remember] };
}
