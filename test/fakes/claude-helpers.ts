// Helpers for tests that drive the fake `claude` executable (test/fakes/claude.mjs).
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Absolute path of the fake CLI (executable, `#!/usr/bin/env node`). */
export const FAKE_CLAUDE_PATH: string = fileURLToPath(new URL('./claude.mjs', import.meta.url));

export interface StreamEvent {
  type: string;
  subtype?: string;
  session_id?: string;
  [k: string]: unknown;
}

export interface FakeClaudeLogRecord {
  pid: number;
  argv: string[];
  cwd: string;
  scenario: string;
  args: Record<string, string> & { _: string[] };
  session_id: string;
  resumed: boolean;
  prompt: string | null;
  agent_type: string | null;
  grandchild_pid?: number;
  env: Record<string, string | null> & { names: string[] };
  started_at: string;
  /** The process's nice value when it started. */
  priority: number;
}

/** Parses newline-delimited stream-json output (blank lines ignored; throws on a non-JSON line). */
export function parseStreamJson(stdout: string): StreamEvent[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as StreamEvent);
}

/** The final `result` event of a run, if any. */
export function resultEvent(stdout: string): StreamEvent | undefined {
  return parseStreamJson(stdout)
    .filter((e) => e.type === 'result')
    .at(-1);
}

/** All text blocks of assistant events, in order. */
export function assistantTexts(events: StreamEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    if (e.type !== 'assistant') continue;
    const content = (e.message as { content?: Array<{ type: string; text?: string }> } | undefined)?.content ?? [];
    for (const c of content) if (c.type === 'text' && typeof c.text === 'string') out.push(c.text);
  }
  return out;
}

/** Reads the FAKE_CLAUDE_LOG JSONL file (empty array when it does not exist yet). */
export function readFakeClaudeLog(file: string): FakeClaudeLogRecord[] {
  return readJsonLines<FakeClaudeLogRecord>(file);
}

/**
 * Complete lines of a JSONL file that other processes append to. A line without its newline is
 * still being written (a large record is not one atomic write) and is left for the next read.
 */
export function readJsonLines<T>(file: string): T[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return complete
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
}

/** Standard argv for the fake, mirroring how Factory invokes the real CLI. */
export function claudeArgs(prompt: string, extra: string[] = []): string[] {
  return ['-p', prompt, '--output-format', 'stream-json', '--verbose', ...extra];
}
