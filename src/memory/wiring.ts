// Connects agent memory to task execution: recall before a run, remember after it.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { TaskExecutor, RunReport } from '../orchestrator/executor.js';
import { createNoopMemory } from './noop-store.js';
import { createSurrealMemory } from './surreal-store.js';
import { createOpenAIEmbedder } from './embeddings.js';
import { formatMemoriesForPrompt } from './format.js';
import type { MemoryStore, NewMemory } from './types.js';
import { truncate } from '../agents/prompt.js';

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
  const outcome = r.status === 'failed' ? `Failed: ${truncate(r.run.error, 800)}` : r.status === 'in_review' ? 'Opened a pull request.' : 'Completed.';
  const summary = typeof r.handoff?.summary === 'string' ? r.handoff.summary : r.finalText;
  const out: NewMemory[] = [{
    ...base, kind: 'outcome', title: t.title.slice(0, 300),
    content: truncate(`${outcome}\n${summary}`.trim(), 2000), tags: [t.agent_type, r.status],
  }];
  for (const l of r.learnings) {
    out.push({ ...base, kind: /gotcha|careful|beware|don't|do not|never/i.test(l) ? 'gotcha' : 'learning', title: truncate(l.split('\n')[0]!, 200), content: truncate(l, 2000), tags: [t.agent_type] });
  }
  return out;
}

export function attachMemory(memory: MemoryStore, executor: TaskExecutor, maxPromptChars: number, logger: Logger): void {
  if (memory.health().status === 'disabled') return;
  executor.addPromptSource(async (task, { resume }) => {
    if (resume) return undefined; // the session already holds what was recalled
    const records = await memory.recall({ repo: task.repo, text: `${task.title}\n${task.description}`, limit: 8 });
    return formatMemoriesForPrompt(records, maxPromptChars);
  });
  executor.onRun(async (r) => {
    if (r.status === 'queued' || r.status === 'waiting_for_input') return;
    for (const m of memoriesFromRun(r)) {
      if (!(await memory.add(m))) logger.warn({ taskId: r.task.id }, 'memory not stored');
    }
  });
}
