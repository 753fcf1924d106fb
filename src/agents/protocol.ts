// Understands Claude Code's stream-json events and the JSON lines agents print for Factory. Pure.

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_creation_tokens: number;
}

export interface ResultEvent {
  isError: boolean;
  subtype: string;
  text: string;
  sessionId: string;
  costUsd: number;
  usage: Usage;
  durationMs: number;
  numTurns: number;
}

export type StreamEvent =
  | { kind: 'init'; sessionId: string; model: string }
  | { kind: 'text'; text: string }
  | { kind: 'tool_use'; name: string; input: unknown }
  | { kind: 'tool_result'; content: string; isError: boolean }
  | { kind: 'result'; result: ResultEvent }
  | { kind: 'other'; type: string }
  | { kind: 'raw'; text: string };

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const str = (v: unknown) => (typeof v === 'string' ? v : '');

/** Turns one stdout line into zero or more events (an assistant message may hold several blocks). */
export function parseStreamLine(line: string): StreamEvent[] {
  const trimmed = line.trim();
  if (!trimmed) return [];
  let obj: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(trimmed);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return [{ kind: 'raw', text: trimmed }];
    obj = parsed as Record<string, unknown>;
  } catch {
    return [{ kind: 'raw', text: trimmed }];
  }
  switch (obj.type) {
    case 'system':
      return obj.subtype === 'init'
        ? [{ kind: 'init', sessionId: str(obj.session_id), model: str(obj.model) }]
        : [{ kind: 'other', type: 'system' }];
    case 'assistant':
    case 'user': {
      const content = (obj.message as { content?: unknown } | undefined)?.content;
      if (typeof content === 'string') return obj.type === 'assistant' ? [{ kind: 'text', text: content }] : [];
      if (!Array.isArray(content)) return [{ kind: 'other', type: String(obj.type) }];
      const out: StreamEvent[] = [];
      for (const block of content as Array<Record<string, unknown>>) {
        if (block?.type === 'text' && obj.type === 'assistant') out.push({ kind: 'text', text: str(block.text) });
        else if (block?.type === 'tool_use') out.push({ kind: 'tool_use', name: str(block.name), input: block.input });
        else if (block?.type === 'tool_result') {
          const c = block.content;
          const text = typeof c === 'string' ? c : Array.isArray(c) ? c.map((x: { text?: unknown }) => str(x?.text)).join('\n') : '';
          out.push({ kind: 'tool_result', content: text, isError: block.is_error === true });
        }
      }
      return out;
    }
    case 'result': {
      const u = (obj.usage ?? {}) as Record<string, unknown>;
      return [
        {
          kind: 'result',
          result: {
            isError: obj.is_error === true || (typeof obj.subtype === 'string' && obj.subtype.startsWith('error')),
            subtype: str(obj.subtype),
            text: str(obj.result),
            sessionId: str(obj.session_id),
            costUsd: num(obj.total_cost_usd),
            usage: {
              input_tokens: num(u.input_tokens),
              output_tokens: num(u.output_tokens),
              cache_read_tokens: num(u.cache_read_input_tokens),
              cache_creation_tokens: num(u.cache_creation_input_tokens),
            },
            durationMs: num(obj.duration_ms),
            numTurns: num(obj.num_turns),
          },
        },
      ];
    }
    default:
      return [{ kind: 'other', type: str(obj.type) || 'unknown' }];
  }
}

export const PROTOCOL_TYPES = ['message', 'clarification_needed', 'handoff_output', 'learning'] as const;
export type ProtocolType = (typeof PROTOCOL_TYPES)[number];
export interface ProtocolObject {
  type: ProtocolType;
  [key: string]: unknown;
}

/**
 * Finds Factory protocol objects printed by the agent: a JSON object on a line of its own
 * (optionally inside a ``` fence), whose `type` is one Factory understands.
 */
export function extractProtocolObjects(text: string): ProtocolObject[] {
  const out: ProtocolObject[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line.startsWith('{') || !line.endsWith('}') || !line.includes('"type"')) continue;
    try {
      const obj = JSON.parse(line) as Record<string, unknown>;
      if (obj && typeof obj === 'object' && PROTOCOL_TYPES.includes(obj.type as ProtocolType)) out.push(obj as ProtocolObject);
    } catch {
      // not JSON after all: ordinary text
    }
  }
  return out;
}

/** A short human-readable rendering of an event, for summaries and progress notes. */
export function describeEvent(e: StreamEvent): string {
  switch (e.kind) {
    case 'text':
      return e.text.trim().split('\n')[0]!.slice(0, 200);
    case 'tool_use': {
      const input = e.input as Record<string, unknown> | undefined;
      const detail = input ? str(input.command) || str(input.file_path) || str(input.pattern) || str(input.path) : '';
      return `${e.name}${detail ? `: ${detail.slice(0, 160)}` : ''}`;
    }
    case 'tool_result':
      return `${e.isError ? 'error: ' : ''}${e.content.trim().split('\n')[0]!.slice(0, 160)}`;
    case 'result':
      return `${e.result.isError ? 'failed' : 'finished'}: ${e.result.text.slice(0, 200)}`;
    case 'init':
      return `session ${e.sessionId}`;
    case 'raw':
      return e.text.slice(0, 200);
    default:
      return e.type;
  }
}
