#!/usr/bin/env node
// Fake `claude` CLI for Factory tests. Speaks the Claude Code `--print --output-format stream-json --verbose`
// protocol (newline-delimited JSON events) and picks a behaviour ("scenario") from directives in the prompt:
//   [fake:<scenario> k=v ...]               generic directive
//   [fake:<agent_type>=<scenario> k=v ...]  only for FACTORY_AGENT_TYPE=<agent_type>; wins over a generic one
// Fallback: env FAKE_CLAUDE_SCENARIO (same "<scenario> k=v" syntax, or [fake:...] directives), else `success`.
// Text-valued args (content, learn, question, summary, details, next_steps, result) turn `_` into spaces and
// are then %XX-decoded (so `%5F` is a literal underscore). See the `scenarios` table below for the list.
// Env: FAKE_CLAUDE_LOG (JSONL invocation log), FAKE_CLAUDE_STATE_DIR (counters), FAKE_CLAUDE_PIDFILE (grandchild),
// FAKE_CLAUDE_SPANS (JSONL start/end per run), FAKE_WORKER (a label copied into the span).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DIRECTIVE_RE,
  MODEL,
  TOOLS,
  VERSION,
  bump,
  intArg,
  keepAlive,
  makeCtx,
  parseArgv,
  pickScenario,
  sleep,
  textArg,
  writeLog,
  writeOut,
} from './claude-lib.mjs';

// ---------------------------------------------------------------- scenarios
function changeLine(ctx, content) {
  return `${content} (task ${ctx.taskId || 'none'} at ${new Date().toISOString()})`;
}

function finalText(args, base) {
  let text = base;
  if (args.learn !== undefined) text += `\n${JSON.stringify({ type: 'learning', content: textArg(args.learn) })}`;
  return text;
}

/** The standard "did some work" flow; `extra` lines are appended to the final assistant text / result. */
async function doSuccess(ctx, args, { content, extra = [], cost, edit = true } = {}) {
  await ctx.say("I'll make the requested change.");
  if (edit) {
    const body = content ?? changeLine(ctx, args.content !== undefined ? textArg(args.content) : 'Fake change');
    await ctx.edit(args.file ?? 'FAKE_CHANGE.md', body);
  }
  const base = args.result !== undefined ? textArg(args.result) : edit ? 'Implemented the change.' : 'No changes were needed.';
  const text = [finalText(args, base), ...extra].join('\n');
  await ctx.say(text);
  await ctx.result(text, cost === undefined ? {} : { cost });
}

function promptBody(ctx) {
  return (ctx.opts.prompt ?? '').replace(DIRECTIVE_RE, '');
}

function findAnswer(ctx) {
  const body = promptBody(ctx);
  const marks = [...body.matchAll(/answer:/gi)];
  if (marks.length) {
    const last = marks[marks.length - 1];
    return body
      .slice(last.index + last[0].length)
      .split('\n')[0]
      .trim();
  }
  if (ctx.opts.resume)
    return (
      body
        .split('\n')
        .map((l) => l.trim())
        .find(Boolean) ?? ''
    );
  return null;
}

const scenarios = {
  success: (ctx, args) => doSuccess(ctx, args),
  noop: (ctx, args) => doSuccess(ctx, args, { edit: false }),

  async slow(ctx, args) {
    const ms = intArg(args.ms, 200);
    const lines = intArg(args.lines, 10);
    await ctx.say('Starting slow work.');
    await ctx.edit(args.file ?? 'FAKE_CHANGE.md', changeLine(ctx, args.content !== undefined ? textArg(args.content) : 'Slow change'));
    for (let i = 1; i <= lines; i++) {
      await sleep(ms);
      await ctx.say(`Working... step ${i}/${lines}`);
    }
    const text = finalText(args, 'Implemented the change.');
    await ctx.result(text);
  },

  async flood(ctx, args) {
    const target = intArg(args.mb, 200) * 1024 * 1024;
    const chunk = 'x'.repeat(Math.max(16, intArg(args.chunk, 16 * 1024)));
    let written = 0;
    let i = 0;
    while (written < target) {
      ctx.assistantTurns++;
      const line = `${JSON.stringify({
        type: 'assistant',
        message: { role: 'assistant', content: [{ type: 'text', text: `flood ${++i} ${chunk}` }] },
        session_id: ctx.sessionId,
      })}\n`;
      written += Buffer.byteLength(line);
      if (ctx.opts.outputFormat === 'stream-json') await writeOut(line);
    }
    await ctx.result('Flood complete.');
  },

  // One line of `mb` MiB with no newline in it, written in 64 KiB pieces so the fake holds none of it.
  async 'long-line'(ctx, args) {
    const target = intArg(args.mb, 50) * 1024 * 1024;
    const piece = 'y'.repeat(64 * 1024);
    await writeOut(`{"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":"`);
    for (let written = 0; written < target; written += piece.length) await writeOut(piece);
    if (args.end === 'eof') return; // the stream ends inside the line: no newline, no result
    await writeOut(`"}]},"session_id":"${ctx.sessionId}"}\n`);
    await ctx.result('Long line complete.');
  },

  async hang(ctx) {
    await ctx.say('Thinking about the problem...');
    keepAlive();
  },

  silent() {
    keepAlive();
  },

  async chatty(ctx, args) {
    const ms = intArg(args.ms, 100);
    for (let i = 1; ; i++) {
      await ctx.say(`Still chatting (${i})`);
      await sleep(ms);
    }
  },

  async crash(ctx, args) {
    await ctx.say('Starting work...');
    process.stderr.write('fatal: simulated crash\n    at runAgent (fake-claude)\n    at main (fake-claude)\nError: process aborted\n');
    process.exitCode = intArg(args.code, 1);
  },

  // Reads a document that talks about usage limits, says so, then crashes: not a limit of its own.
  async 'reads-limit-text'(ctx) {
    await ctx.tool(
      'Read',
      { file_path: 'docs/limits.md' },
      'Claude AI usage limit reached|1700000000 — what users see when the plan is exhausted',
      false,
    );
    await ctx.say('The docs mention: usage limit reached. Too many requests means 429.');
    process.stderr.write('fatal: simulated crash\n');
    process.exitCode = 1;
  },

  async 'error-result'(ctx) {
    await ctx.say('Something went wrong.');
    await ctx.result('Simulated agent error', { isError: true, subtype: 'error_during_execution', exitCode: 1 });
  },

  // Starts tool processes that leave the agent's process group, then hangs (or exits: exit=yes).
  // how=setsid: a child in a session of its own; how=double-fork: a grandchild whose parent exits at
  // once (reparented away from the agent); how=both. Their pids go to $FAKE_CLAUDE_PIDFILE, one per line.
  async escape(ctx, args) {
    if (args.times !== undefined && bump('escape', ctx.taskId || ctx.cwd) > intArg(args.times, 1)) return doSuccess(ctx, args);
    const how = String(args.how ?? 'both');
    if (how === 'setsid' || how === 'both') {
      const child = spawn('sleep', ['300'], { stdio: 'ignore', detached: true });
      child.unref();
      recordPid(child.pid);
    }
    if (how === 'double-fork' || how === 'both') {
      // The shell gets a session of its own too, so its orphan is in neither the agent's group nor its tree.
      const pidfile = process.env.FAKE_CLAUDE_PIDFILE ?? '/dev/null';
      const sh = spawn('sh', ['-c', `sleep 301 & echo $! >> "${pidfile}"`], { stdio: 'ignore', detached: true });
      await new Promise((resolve) => sh.once('exit', resolve));
    }
    await ctx.tool('Bash', { command: 'npm run dev &' }, 'started', false);
    if (args.exit === 'yes') {
      process.exitCode = 1;
      return;
    }
    keepAlive();
  },

  'ignore-sigterm': (ctx) => scenarios.hang(ctx),
  grandchild: (ctx) => scenarios.hang(ctx),

  async clarify(ctx, args) {
    const rounds = intArg(args.rounds, 1);
    const answer = findAnswer(ctx);
    const ask = rounds <= 1 ? !ctx.opts.resume && answer === null : bump('clarify', ctx.taskId || ctx.cwd) <= rounds;
    if (ask) {
      const question = args.question !== undefined ? textArg(args.question) : 'Which database should I use?';
      const options = args.options !== undefined ? String(args.options).split(',') : ['postgres', 'sqlite'];
      const text = `I need clarification before I can continue.\n${JSON.stringify({ type: 'clarification_needed', question, options })}`;
      await ctx.say(text);
      await ctx.result(text);
      return;
    }
    const used = answer ? `Answer used: ${answer}` : 'Resumed without an answer';
    await doSuccess(ctx, args, { content: changeLine(ctx, used) });
  },

  async message(ctx, args) {
    const msg = {
      type: 'message',
      to: args.to ?? 'reviewer',
      content: args.content !== undefined ? textArg(args.content) : 'Progress update from fake agent',
      message_type: args.type ?? 'info',
    };
    const line = JSON.stringify(msg);
    if (args.where === 'final') return doSuccess(ctx, { ...args, content: undefined }, { extra: [line] });
    await ctx.say(`Sending a message to ${msg.to}.\n${line}`);
    await doSuccess(ctx, { ...args, content: undefined });
  },

  async handoff(ctx, args) {
    const file = args.file ?? 'FAKE_CHANGE.md';
    const handoff = {
      type: 'handoff_output',
      summary: args.summary !== undefined ? textArg(args.summary) : 'Implemented X',
      details: args.details !== undefined ? textArg(args.details) : 'Appended a line to the change file.',
      files_changed: [file],
      next_steps: args.next_steps !== undefined ? textArg(args.next_steps) : 'Review the change',
      learnings: ['Use the fake for tests'],
    };
    await doSuccess(ctx, args, { extra: [JSON.stringify(handoff)] });
  },

  async review(ctx, args) {
    const verdicts = String(args.verdicts ?? args.verdict ?? 'approve')
      .split(',')
      .filter(Boolean);
    const n = bump('review', process.env.FACTORY_WORKFLOW_ID || ctx.cwd);
    const verdict = verdicts[Math.min(n, verdicts.length) - 1];
    if (verdict !== 'approve' && verdict !== 'reject') throw new Error(`unknown verdict "${verdict}"`);
    await ctx.say('Reviewing the change.');
    await ctx.tool('Read', { file_path: path.resolve(ctx.cwd, 'FAKE_CHANGE.md') }, 'file contents');
    const issue = (severity, description, suggestion) => ({ severity, description, file: 'FAKE_CHANGE.md', line: 1, suggestion });
    const body =
      verdict === 'approve'
        ? { approved: true, summary: 'Looks good', issues: [issue('nit', 'Typo', 'Fix typo')] }
        : {
            approved: false,
            summary: 'Found problems',
            issues: [issue(args.severity ?? 'major', 'Missing error handling', 'Handle errors')],
          };
    // AGENTS.md §6: the reviewer's final answer holds its handoff line, then the fenced json block last.
    const handoff = JSON.stringify({
      type: 'handoff_output',
      summary: `Review ${n}: ${verdict === 'approve' ? 'approved' : 'changes requested'}`,
      details: body.summary,
      files_changed: [],
      next_steps: verdict === 'approve' ? 'Merge' : 'Fix the issues',
      learnings: [],
    });
    const fence = `\`\`\`json\n${JSON.stringify(body, null, 2)}\n\`\`\``;
    const text = args.handoff === 'no' ? `Review ${n} complete.\n\n${fence}` : `Review ${n} complete.\n${handoff}\n\n${fence}`;
    await ctx.say(text);
    await ctx.result(text);
  },

  async 'usage-limit'(ctx, args) {
    const n = bump('usage-limit', ctx.taskId || ctx.cwd);
    if (n > intArg(args.times, 1)) return doSuccess(ctx, args);
    const reset = intArg(args.reset, Math.floor(Date.now() / 1000) + 2);
    const text = `Claude AI usage limit reached|${reset}`;
    await ctx.say(text);
    await ctx.result(text, { isError: true, exitCode: 1 });
  },

  async stall(ctx, args) {
    const repeat = intArg(args.repeat, 30);
    await ctx.say('Let me run the tests.');
    for (let i = 0; i < repeat; i++) {
      await ctx.tool('Bash', { command: 'npm test' }, "Error: Cannot find module 'x'", true);
    }
    keepAlive();
  },

  async budget(ctx, args) {
    const lines = intArg(args.lines, 5);
    for (let i = 1; i <= lines; i++) await ctx.say(`Expensive thinking ${i}/${lines}`);
    await doSuccess(ctx, args, { cost: intArg(args.cost, 5) });
  },

  async 'env-dump'(ctx, args) {
    const set = (k) => (process.env[k] ? 'set' : 'unset');
    const body = [
      changeLine(ctx, 'env-dump'),
      `FACTORY_TASK_ID=${process.env.FACTORY_TASK_ID ?? ''}`,
      `FACTORY_AGENT_TYPE=${process.env.FACTORY_AGENT_TYPE ?? ''}`,
      `GITHUB_TOKEN=${set('GITHUB_TOKEN')}`,
      `GH_TOKEN=${set('GH_TOKEN')}`,
      `ANTHROPIC_API_KEY=${set('ANTHROPIC_API_KEY')}`,
    ].join('\n');
    await doSuccess(ctx, args, { content: body });
  },
};

// ---------------------------------------------------------------- main

function recordPid(pid) {
  if (process.env.FAKE_CLAUDE_PIDFILE && pid) fs.appendFileSync(process.env.FAKE_CLAUDE_PIDFILE, `${pid}\n`);
}

function spawnGrandchild() {
  const child = spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], { stdio: 'ignore', detached: false });
  if (process.env.FAKE_CLAUDE_PIDFILE) fs.writeFileSync(process.env.FAKE_CLAUDE_PIDFILE, `${child.pid}\n`);
  return child.pid;
}

async function main() {
  const argv = process.argv.slice(2);
  const opts = parseArgv(argv);
  if (opts.version) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const agentType = process.env.FACTORY_AGENT_TYPE ?? '';
  const { scenario, args } = pickScenario(opts.prompt ?? '', agentType);
  const resumed = Boolean(opts.resume);
  const sessionId = opts.resume || opts.sessionId || randomUUID();

  const onSignal = (code) => () => process.exit(code);
  process.on('SIGTERM', scenario === 'ignore-sigterm' ? () => {} : onSignal(143));
  process.on('SIGINT', onSignal(130));
  process.on('SIGHUP', onSignal(129));

  const grandchildPid = scenario === 'grandchild' ? spawnGrandchild() : undefined;
  const e = process.env;
  // FAKE_CLAUDE_SPANS: one JSON line per run with its start and end (ms), to check concurrency limits.
  if (e.FAKE_CLAUDE_SPANS) {
    const span = { pid: process.pid, task: e.FACTORY_TASK_ID ?? null, worker: e.FAKE_WORKER ?? null, start: Date.now() };
    process.on('exit', () => {
      fs.appendFileSync(e.FAKE_CLAUDE_SPANS, `${JSON.stringify({ ...span, end: Date.now() })}\n`);
    });
  }
  writeLog({
    pid: process.pid,
    argv,
    cwd: process.cwd(),
    scenario,
    args,
    session_id: sessionId,
    resumed,
    prompt: opts.prompt ?? null,
    agent_type: agentType || null,
    append_system_prompt: opts.appendSystemPrompt ?? null,
    allowed_tools: opts.allowedTools ?? null,
    ...(grandchildPid !== undefined ? { grandchild_pid: grandchildPid } : {}),
    env: {
      FACTORY_TASK_ID: e.FACTORY_TASK_ID ?? null,
      FACTORY_AGENT_TYPE: e.FACTORY_AGENT_TYPE ?? null,
      FACTORY_API_URL: e.FACTORY_API_URL ?? null,
      FACTORY_WORKFLOW_ID: e.FACTORY_WORKFLOW_ID ?? null,
      HOME: e.HOME ?? null,
      CLAUDE_CONFIG_DIR: e.CLAUDE_CONFIG_DIR ?? null,
      FACTORY_SANDBOX: e.FACTORY_SANDBOX ?? null,
      names: Object.keys(e).sort(),
    },
    started_at: new Date().toISOString(),
    priority: os.getPriority(),
  });

  if (!opts.print) {
    process.stderr.write('fake-claude: only --print (-p) mode is supported\n');
    process.exitCode = 2;
    return;
  }
  if (opts.outputFormat === 'stream-json' && !opts.verbose) {
    process.stderr.write('Error: When using --print, --output-format=stream-json requires --verbose\n');
    process.exitCode = 1;
    return;
  }
  const run = scenarios[scenario];
  if (!run || !Object.hasOwn(scenarios, scenario)) {
    process.stderr.write(`fake-claude: unknown scenario "${scenario}"\n`);
    process.exitCode = 2;
    return;
  }
  const ctx = makeCtx(opts, sessionId);
  if (scenario !== 'silent') {
    await ctx.emit({
      type: 'system',
      subtype: 'init',
      cwd: ctx.cwd,
      session_id: sessionId,
      tools: TOOLS,
      mcp_servers: [],
      model: MODEL,
      permissionMode: opts.permissionMode ?? 'default',
      apiKeySource: 'none',
      uuid: randomUUID(),
    });
  }
  await run(ctx, args);
}

main().catch((err) => {
  process.stderr.write(`fake-claude: ${err?.stack ?? err}\n`);
  process.exit(2);
});
