import type { MemoryRecord } from './types.js';

const HEADER = '## Relevant memories from earlier tasks\n\n';
/** Longest content shown for one memory, so one huge memory cannot crowd out the rest. */
const MAX_ITEM_CONTENT = 600;

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`;
}

function bullet(m: MemoryRecord): string {
  const where = m.task_id === null ? m.repo : `${m.repo}, task #${m.task_id}`;
  const title = oneLine(m.title) || '(untitled)';
  const content = clip(oneLine(m.content), MAX_ITEM_CONTENT);
  return `- **[${m.kind}] ${title}** (${where})${content ? `: ${content}` : ''}\n`;
}

function omittedLine(count: number): string {
  return `- … ${count} more ${count === 1 ? 'memory' : 'memories'} omitted (size limit)\n`;
}

/**
 * A markdown section for an agent prompt: one bullet per memory, in the given order.
 * The result never exceeds maxChars; when memories had to be left out it ends with a marker line.
 * Returns '' for no records (or when not even the header and marker fit).
 */
export function formatMemoriesForPrompt(records: MemoryRecord[], maxChars = 4000): string {
  if (records.length === 0) return '';
  let out = HEADER;
  for (let i = 0; i < records.length; i += 1) {
    const line = bullet(records[i]!);
    const isLast = i === records.length - 1;
    // Keep room for the marker unless this is the last bullet.
    const reserve = isLast ? 0 : omittedLine(records.length - i - 1).length;
    if (out.length + line.length + reserve > maxChars) {
      const marker = omittedLine(records.length - i);
      if (out.length + marker.length > maxChars) return '';
      return (out + marker).trimEnd();
    }
    out += line;
  }
  return out.trimEnd();
}
