// Handoffs between agents: what one step leaves for the next. Pure.
import { truncate } from '../agents/prompt.js';
import type { ProtocolObject } from '../agents/protocol.js';

export const HANDOFF_LIMITS = { content: 50_000, summary: 2_000, prompt: 8_000 } as const;

export type OutputType = 'code_diff' | 'review_comments' | 'research_notes' | 'test_results' | 'general' | 'error_report';

export function outputTypeFor(agentType: string, failed: boolean): OutputType {
  if (failed) return 'error_report';
  if (agentType === 'reviewer') return 'review_comments';
  if (agentType === 'researcher') return 'research_notes';
  if (agentType === 'coder' || agentType === 'coder_revision') return 'code_diff';
  return 'general';
}

/** Builds a handoff from the agent's handoff_output line, or from its final text when it gave none. */
export function buildHandoff(
  agentType: string,
  handoff: ProtocolObject | undefined,
  finalText: string,
  changedFiles: string[],
  failed = false,
) {
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  let summary: string;
  let content: string;
  if (handoff) {
    summary = str(handoff.summary) || finalText.slice(0, HANDOFF_LIMITS.summary);
    const files = Array.isArray(handoff.files_changed) ? handoff.files_changed.map(String) : changedFiles;
    content = [
      str(handoff.details) && `Details:\n${str(handoff.details)}`,
      files.length ? `Files changed:\n${files.map((f) => `- ${f}`).join('\n')}` : '',
      str(handoff.next_steps) && `Next steps:\n${str(handoff.next_steps)}`,
      agentType === 'reviewer' ? finalText : '',
    ]
      .filter(Boolean)
      .join('\n\n');
  } else {
    summary = finalText.trim().split('\n')[0] ?? '';
    content = [finalText, changedFiles.length ? `Files changed:\n${changedFiles.map((f) => `- ${f}`).join('\n')}` : '']
      .filter(Boolean)
      .join('\n\n');
  }
  return {
    output_type: outputTypeFor(agentType, failed),
    summary: truncate(summary, HANDOFF_LIMITS.summary),
    content: truncate(content, HANDOFF_LIMITS.content),
  };
}

/** The prompt section carrying earlier handoffs, capped. */
export function handoffSection(
  items: Array<{ from: string; summary: string; content: string }>,
  max: number = HANDOFF_LIMITS.prompt,
): string {
  if (!items.length) return '';
  const body = items.map((h) => `### From ${h.from}\n${h.summary}\n\n${h.content}`).join('\n\n');
  return truncate(`## Handoff from earlier steps\n\n${body}`, max);
}
