// Rendering stored log lines: Claude's stream-json events (session start, text, tool calls and
// their results, the final result) become short readable list items; other lines are shown raw.
import { state } from './state.js';
import { el } from './dom.js';
import { fmtClock, fmtCost, fmtSpan, oneLine, truncate } from './format.js';

function logItem(row, kind, label, text) {
  const li = el('li', `ln k-${kind} s-${row.stream}`);
  li.dataset.id = String(row.id);
  const time = el('time', 'ts', fmtClock(row.timestamp));
  time.dateTime = row.timestamp || '';
  li.append(time);
  if (label) li.append(el('span', 'tag', label));
  li.append(el('span', 'txt', text));
  return li;
}

/** A path relative to the agent's working directory (from the session's init event). */
function relPath(p) {
  const s = String(p ?? '');
  const cwd = state.log?.cwd;
  return cwd && s.startsWith(`${cwd}/`) ? s.slice(cwd.length + 1) : s;
}

function toolSummary(name, input) {
  if (!input || typeof input !== 'object') return '';
  const i = input;
  switch (name) {
    case 'Bash':
      return oneLine(i.command, 300);
    case 'Read':
    case 'Edit':
    case 'MultiEdit':
    case 'Write':
      return relPath(i.file_path);
    case 'NotebookEdit':
      return relPath(i.notebook_path);
    case 'Glob':
      return `${i.pattern ?? ''}${i.path ? ` in ${relPath(i.path)}` : ''}`;
    case 'Grep':
      return `${i.pattern ?? ''}${i.path ? ` in ${relPath(i.path)}` : ''}${i.glob ? ` (${i.glob})` : ''}`;
    case 'WebFetch':
      return String(i.url ?? '');
    case 'WebSearch':
      return String(i.query ?? '');
    case 'Task':
      return oneLine(i.description ?? i.prompt, 200);
    case 'TodoWrite':
      return Array.isArray(i.todos) ? `${i.todos.length} item(s)` : '';
    default:
      return oneLine(JSON.stringify(i), 200);
  }
}

function resultText(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content.map((c) => (c && typeof c === 'object' ? (c.type === 'text' ? c.text : `[${c.type}]`) : String(c))).join('\n');
  return content === undefined ? '' : JSON.stringify(content);
}

/** One stored log line as one or more list items: stream-json events become readable lines. */
export function renderLogLine(row) {
  const text = String(row.message ?? '');
  if (row.stream === 'system') return [logItem(row, 'factory', 'factory', text)];
  if (row.stream === 'stderr') return [logItem(row, 'stderr', 'stderr', text)];
  let ev = null;
  if (text.startsWith('{')) {
    try {
      ev = JSON.parse(text);
    } catch {
      ev = null;
    }
  }
  if (!ev || typeof ev !== 'object' || typeof ev.type !== 'string') return [logItem(row, 'raw', '', truncate(text, 4000))];
  switch (ev.type) {
    case 'system': {
      if (ev.subtype === 'init') {
        if (typeof ev.cwd === 'string') state.log.cwd = ev.cwd;
        const tools = Array.isArray(ev.tools) ? `${ev.tools.length} tools` : '';
        return [logItem(row, 'init', 'session', ['started', ev.model ? `model ${ev.model}` : '', tools].filter(Boolean).join(' · '))];
      }
      return [logItem(row, 'init', 'system', oneLine(ev.subtype ?? JSON.stringify(ev), 300))];
    }
    case 'assistant': {
      const content = Array.isArray(ev.message?.content) ? ev.message.content : [];
      const out = [];
      for (const c of content) {
        if (!c || typeof c !== 'object') continue;
        if (c.type === 'text') out.push(logItem(row, 'text', '', truncate(c.text, 4000)));
        else if (c.type === 'tool_use') out.push(logItem(row, 'tool', String(c.name ?? 'tool'), toolSummary(c.name, c.input)));
        else if (c.type === 'thinking') out.push(logItem(row, 'thinking', 'thinking', oneLine(c.thinking, 300)));
      }
      return out.length ? out : [logItem(row, 'raw', 'assistant', '')];
    }
    case 'user': {
      const content = Array.isArray(ev.message?.content) ? ev.message.content : [ev.message?.content];
      const out = [];
      for (const c of content) {
        if (c && typeof c === 'object' && c.type === 'tool_result') {
          const li = logItem(row, 'result', c.is_error ? 'tool error' : '↳', oneLine(resultText(c.content), 300));
          if (c.is_error) li.classList.add('err');
          out.push(li);
        } else if (c !== undefined && c !== null) {
          out.push(logItem(row, 'user', 'user', oneLine(resultText(c && typeof c === 'object' && c.type === 'text' ? c.text : c), 300)));
        }
      }
      return out.length ? out : [logItem(row, 'raw', 'user', '')];
    }
    case 'result': {
      const ok = ev.is_error !== true && (ev.subtype === undefined || ev.subtype === 'success');
      const bits = [
        ev.num_turns !== undefined ? `${ev.num_turns} turns` : '',
        ev.duration_ms !== undefined ? fmtSpan(Number(ev.duration_ms)) : '',
        ev.total_cost_usd !== undefined ? fmtCost(ev.total_cost_usd) : '',
      ]
        .filter(Boolean)
        .join(' · ');
      const li = logItem(
        row,
        'final',
        ok ? '✓ result' : `✗ ${ev.subtype ?? 'error'}`,
        `${bits}${ev.result ? ` — ${oneLine(ev.result, 600)}` : ''}`,
      );
      if (!ok) li.classList.add('err');
      return [li];
    }
    default:
      return [logItem(row, 'raw', ev.type, oneLine(text, 300))];
  }
}
