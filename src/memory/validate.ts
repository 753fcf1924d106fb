// The one rule for what a memory may hold, used before it is queued and again before it is stored.
import { MEMORY_KINDS, type NewMemory } from './types.js';

/** Checks and normalises a new memory; returns an error text for bad input. */
export function normaliseMemory(m: NewMemory): { value: Required<NewMemory> } | { error: string } {
  if (!m || typeof m !== 'object') return { error: 'memory must be an object' };
  const repo = typeof m.repo === 'string' ? m.repo.trim() : '';
  if (!repo) return { error: 'repo is required' };
  if (!MEMORY_KINDS.includes(m.kind)) return { error: `kind must be one of ${MEMORY_KINDS.join(', ')}` };
  if (m.task_id !== null && !Number.isSafeInteger(m.task_id)) return { error: 'task_id must be an integer or null' };
  if (typeof m.title !== 'string' || typeof m.content !== 'string') return { error: 'title and content must be strings' };
  const title = m.title.trim();
  const content = m.content.trim();
  if (!title && !content) return { error: 'title or content is required' };
  const tags = [...new Set((Array.isArray(m.tags) ? m.tags : []).filter((t) => typeof t === 'string').map((t) => t.trim()))]
    .filter(Boolean)
    .slice(0, 32);
  const agent_type = typeof m.agent_type === 'string' ? m.agent_type.trim() : '';
  return { value: { repo, task_id: m.task_id, agent_type, kind: m.kind, title, content, tags } };
}
