// Helpers for the fake `claude` CLI (test/fakes/claude.mjs): argv + directive parsing, state counters,
// the invocation log, and the stream-json event writer. Plain Node ESM, node:* only.
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const MODEL = 'fake-model';
export const VERSION = '1.0.0 (Claude Code fake)';
export const TOOLS = ['Task', 'Bash', 'Glob', 'Grep', 'LS', 'Read', 'Edit', 'MultiEdit', 'Write', 'TodoWrite', 'WebFetch'];
const VALUE_FLAGS = new Set([
  '--output-format',
  '--input-format',
  '--append-system-prompt',
  '--system-prompt',
  '--allowedTools',
  '--allowed-tools',
  '--disallowedTools',
  '--disallowed-tools',
  '--resume',
  '-r',
  '--model',
  '--fallback-model',
  '--permission-mode',
  '--max-turns',
  '--session-id',
  '--mcp-config',
  '--settings',
  '--add-dir',
  '--permission-prompt-tool',
  '--agents',
  '--setting-sources',
  '--max-budget-usd',
]);
const BOOL_FLAGS = new Set([
  '-p',
  '--print',
  '--verbose',
  '-c',
  '--continue',
  '--dangerously-skip-permissions',
  '--debug',
  '--include-partial-messages',
  '--strict-mcp-config',
  '--replay-user-messages',
  '--fork-session',
  '-v',
  '--version',
  '-h',
  '--help',
]);

// ---------------------------------------------------------------- argv / directives
export function parseArgv(argv) {
  const o = { print: false, prompt: undefined, verbose: false, outputFormat: 'text', positionals: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const inline = eq > 0 ? a.slice(eq + 1) : undefined;
    if (name === '-p' || name === '--print') {
      o.print = true;
      if (inline !== undefined) o.prompt = inline;
      else if (i + 1 < argv.length && !VALUE_FLAGS.has(argv[i + 1]) && !BOOL_FLAGS.has(argv[i + 1])) o.prompt = argv[++i];
    } else if (VALUE_FLAGS.has(name)) {
      const v = inline !== undefined ? inline : argv[++i];
      if (name === '--output-format') o.outputFormat = v;
      else if (name === '--append-system-prompt') o.appendSystemPrompt = v;
      else if (name === '--allowedTools' || name === '--allowed-tools') o.allowedTools = v;
      else if (name === '--resume' || name === '-r') o.resume = v;
      else if (name === '--session-id') o.sessionId = v;
      else if (name === '--permission-mode') o.permissionMode = v;
      else if (name === '--model') o.model = v;
    } else if (name === '--verbose') o.verbose = true;
    else if (name === '-v' || name === '--version') o.version = true;
    else if (name.startsWith('-') && name.length > 1) {
      /* unknown flag: ignored */
    } else o.positionals.push(a);
  }
  if (o.prompt === undefined && o.positionals.length) o.prompt = o.positionals.shift();
  return o;
}

function parseTokens(tokens) {
  const args = { _: [] };
  for (const t of tokens) {
    const eq = t.indexOf('=');
    if (eq > 0) args[t.slice(0, eq)] = t.slice(eq + 1);
    else args._.push(t);
  }
  return args;
}

export const DIRECTIVE_RE = /\[fake:([^\]]*)\]/g;

function findDirective(text, agentType) {
  let generic = null;
  let specific = null;
  for (const m of text.matchAll(DIRECTIVE_RE)) {
    const tokens = m[1].trim().split(/\s+/).filter(Boolean);
    if (!tokens.length) continue;
    let head = tokens[0];
    let type = null;
    const eq = head.indexOf('=');
    if (eq >= 0) {
      type = head.slice(0, eq);
      head = head.slice(eq + 1);
    }
    const d = { scenario: head, args: parseTokens(tokens.slice(1)) };
    if (type === null) generic ??= d;
    else if (agentType && type === agentType) specific ??= d;
  }
  return specific ?? generic;
}

export function pickScenario(prompt, agentType) {
  const fromPrompt = findDirective(prompt, agentType);
  if (fromPrompt) return fromPrompt;
  const env = (process.env.FAKE_CLAUDE_SCENARIO ?? '').trim();
  if (env.includes('[fake:')) {
    const d = findDirective(env, agentType);
    if (d) return d;
  } else if (env) {
    const tokens = env.split(/\s+/);
    return { scenario: tokens[0], args: parseTokens(tokens.slice(1)) };
  }
  return { scenario: 'success', args: { _: [] } };
}

export function textArg(v) {
  const s = String(v).replace(/_/g, ' ');
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function intArg(v, dflt) {
  const n = Number(v);
  return v === undefined || v === '' || !Number.isFinite(n) ? dflt : n;
}

// ---------------------------------------------------------------- state counters
function stateDir() {
  const dir = process.env.FAKE_CLAUDE_STATE_DIR || path.join(os.tmpdir(), 'fake-claude-state');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Atomically bumps a named counter (O_APPEND of one byte) and returns the new 1-based value. */
export function bump(name, key) {
  const safe = String(key)
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .slice(-60);
  const hash = createHash('sha1').update(String(key)).digest('hex').slice(0, 10);
  const file = path.join(stateDir(), `${name}__${safe}__${hash}`);
  fs.appendFileSync(file, '.');
  return fs.statSync(file).size;
}

// ---------------------------------------------------------------- output
let epipe = false;
process.stdout.on('error', (err) => {
  if (err && err.code === 'EPIPE') {
    epipe = true;
    process.exit(0);
  }
  throw err;
});

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
export function keepAlive() {
  setInterval(() => {}, 1 << 30);
}

export async function writeOut(s) {
  if (epipe) return;
  if (!process.stdout.write(s)) await once(process.stdout, 'drain');
}

export function makeCtx(opts, sessionId) {
  const ctx = {
    opts,
    sessionId,
    cwd: process.cwd(),
    started: Date.now(),
    assistantTurns: 0,
    toolN: 0,
    taskId: process.env.FACTORY_TASK_ID ?? '',
    async emit(ev) {
      if (opts.outputFormat === 'stream-json') return writeOut(`${JSON.stringify(ev)}\n`);
      if (ev.type !== 'result') return;
      if (opts.outputFormat === 'json') return writeOut(`${JSON.stringify(ev)}\n`);
      return writeOut(`${ev.result}\n`);
    },
    assistant(content) {
      ctx.assistantTurns++;
      return ctx.emit({
        type: 'assistant',
        message: {
          id: `msg_fake_${ctx.assistantTurns}`,
          type: 'message',
          role: 'assistant',
          model: MODEL,
          content,
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: 10, output_tokens: 5 },
        },
        parent_tool_use_id: null,
        session_id: sessionId,
      });
    },
    say(text) {
      return ctx.assistant([{ type: 'text', text }]);
    },
    async tool(name, input, result, isError = false) {
      const id = `toolu_${++ctx.toolN}`;
      await ctx.assistant([{ type: 'tool_use', id, name, input }]);
      const item = { type: 'tool_result', tool_use_id: id, content: result };
      if (isError) item.is_error = true;
      await ctx.emit({
        type: 'user',
        message: { role: 'user', content: [item] },
        parent_tool_use_id: null,
        session_id: sessionId,
      });
    },
    /** Appends `body` to a file in cwd and reports it as an Edit tool call. */
    async edit(fileName, body) {
      const file = path.resolve(ctx.cwd, fileName);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.appendFileSync(file, body.endsWith('\n') ? body : `${body}\n`);
      await ctx.tool('Edit', { file_path: file, old_string: '', new_string: body }, 'ok');
    },
    async result(text, { isError = false, subtype = 'success', cost = 0.0123, exitCode = 0 } = {}) {
      const now = Date.now();
      await ctx.emit({
        type: 'result',
        subtype,
        is_error: isError,
        duration_ms: now - ctx.started,
        duration_api_ms: Math.max(1, now - ctx.started - 1),
        num_turns: Math.max(1, ctx.assistantTurns),
        result: text,
        session_id: sessionId,
        total_cost_usd: cost,
        usage: { input_tokens: 100, output_tokens: 50, cache_read_input_tokens: 10, cache_creation_input_tokens: 5 },
        permission_denials: [],
        uuid: randomUUID(),
      });
      process.exitCode = exitCode;
    },
  };
  return ctx;
}

export function writeLog(record) {
  const file = process.env.FAKE_CLAUDE_LOG;
  if (!file) return;
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.appendFileSync(file, `${JSON.stringify(record)}\n`);
}
