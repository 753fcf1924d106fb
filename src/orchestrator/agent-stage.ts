// The agent stage: one run of the agent CLI in the task's worktree, under the sandbox and the
// watchdog, its output logged and parsed as it streams, its cost and session recorded when it ends.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AgentType, Config } from '../config.js';
import { PACKAGE_ROOT } from '../paths.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { RunsRepo } from '../db/repositories/runs.js';
import type { TaskService } from '../tasks/service.js';
import type { EventBus } from '../events/bus.js';
import type { RepoSpec } from '../git/repo-spec.js';
import type { Workspace, Worktree } from '../git/workspace.js';
import { runAgent, type RunResult } from '../agents/runner.js';
import type { AgentSandbox } from '../agents/sandbox/index.js';
import { extractProtocolObjects, type ProtocolObject } from '../agents/protocol.js';
import { StallDetector } from '../agents/stall.js';
import { parseRevision } from '../domain/revision.js';
import { coerceError } from '../errors.js';
import { scrub } from '../secrets.js';
import type { ExecContext } from '../queue/types.js';
import type { LogWriter } from './log-writer.js';
import { PendingWrites } from './pending-writes.js';
import type { SystemPromptFor } from './types.js';

export interface AgentStageDeps {
  config: Config;
  logger: Logger;
  tasks: TaskService;
  runs: RunsRepo;
  /** Hears the agent's text (`agent.text`) and its board messages (`agent.message`) as they stream. */
  bus: EventBus;
  workspace: Workspace;
  /** Wraps each agent run in the sandbox (or not, by config and by what the machine allows). */
  sandbox: AgentSandbox;
  /** PATH, HOME and friends for the agent. */
  baseEnv: Record<string, string>;
  apiUrl: string;
  /** A token that lets the agent's tools call its own task's routes. */
  taskToken: (taskId: number) => string;
  /** A system prompt file chosen by someone else than the agent template (workflow steps). */
  systemPromptFor: SystemPromptFor;
}

export interface AgentRun {
  run: RunResult;
  protocol: ProtocolObject[];
  runId: number;
}

export interface AgentRunInput {
  task: TaskRow;
  ctx: ExecContext;
  log: LogWriter;
  wt: Worktree;
  spec: RepoSpec;
  prompt: string;
  sessionId: string | undefined;
}

export class AgentStage {
  constructor(private readonly d: AgentStageDeps) {}

  async run(input: AgentRunInput): Promise<AgentRun> {
    const { task, ctx, log, wt, spec, sessionId } = input;
    const c = this.d.config;
    const { type, template, args, revision } = await this.commandLine(task, input.prompt, sessionId);
    const stall = new StallDetector(c.agent.stall_repeat_threshold);
    const writes = new PendingWrites((err, what) => this.d.logger.warn({ err: coerceError(err), taskId: task.id }, `${what} failed`));
    const runRow = await this.d.runs.start(task.id, task.attempts, revision?.kind ?? (sessionId ? 'resume' : 'run'));
    const protocol = this.protocolCollector(task);
    const jail = await this.d.sandbox.prepare(c.agent.command, args, {
      taskId: task.id,
      worktree: wt.path,
      cache: this.d.workspace.cachePath(spec),
      env: this.agentEnv(task, type),
      allow: [...template.network_allow, ...(spec.networkAllow ?? [])],
      onRefused: (dest) => log.system(`sandbox: refused a connection to ${dest} (not on the network allowlist)`),
    });
    const how = jail.command === 'bwrap' ? ', sandboxed' : ', NOT sandboxed';
    log.system(`starting agent ${c.agent.command} (${type}${sessionId ? `, resuming session ${sessionId}` : ''}${how})`);
    const run = await runAgent({
      command: jail.command,
      args: jail.args,
      cwd: wt.path,
      env: jail.env,
      totalTimeoutMs: Math.min(template.timeout_minutes, c.agent_timeout_minutes) * 60_000,
      idleTimeoutMs: c.agent_activity_timeout_minutes * 60_000,
      killGraceMs: c.agent.kill_grace_seconds * 1000,
      niceness: c.agent.nice,
      signal: ctx.signal,
      tailLines: c.agent.log_tail_lines,
      onStart: (pid, mark) => {
        ctx.setPid(pid);
        writes.add(this.d.runs.update(runRow.id, { pid, proc_mark: mark }), 'recording the agent process');
      },
      onLine: (stream, line, dropped) => log.write(stream, line, dropped),
      backpressure: () => log.backlog(),
      onEvent: (ev) => {
        if (ev.kind === 'text') this.d.bus.emit('agent.text', { task, text: ev.text });
        if (ev.kind === 'init' && ev.sessionId) {
          // Stored at once: if Factory dies mid-run, the next start resumes this session.
          writes.add(this.d.tasks.update(task.id, { session_id: ev.sessionId }), 'recording the session');
          writes.add(this.d.runs.update(runRow.id, { session_id: ev.sessionId }), 'recording the session');
        }
        const stuck = stall.see(ev);
        if (stuck) return stuck;
        if (ev.kind === 'text') return protocol.collect(ev.text);
        if (ev.kind === 'result') return protocol.collect(ev.result.text);
      },
    }).finally(() => jail.dispose());
    ctx.setPid(null);
    log.system(
      `agent ended: ${run.outcome}${run.error ? ` (${run.error.split('\n')[0]})` : ''} after ${Math.round(run.durationMs / 1000)} s`,
    );
    if (run.leftoversKilled) log.system(`killed ${run.leftoversKilled} process(es) the agent left running`);
    // What the callbacks wrote during the run lands before the run's final record.
    await writes.settled();
    await this.record(task, ctx, runRow.id, run);
    return { run, protocol: protocol.objects, runId: runRow.id };
  }

  private async commandLine(task: TaskRow, prompt: string, sessionId: string | undefined) {
    const c = this.d.config;
    // Follow-up work on an open PR (CI failure, review) is a revision, whatever the task's own type.
    const revision = parseRevision(task.revision_context);
    const type = (revision ? 'coder_revision' : task.agent_type in c.agent_templates ? task.agent_type : 'coder') as AgentType;
    const template = c.agent_templates[type];
    const promptFile = (await this.d.systemPromptFor(task)) ?? template.system_prompt_file;
    if (!existsSync(promptFile)) throw new Error(`system prompt file for ${type} not found: ${promptFile}`);
    const args = [
      '-p',
      prompt,
      '--output-format',
      'stream-json',
      '--verbose',
      '--append-system-prompt',
      readFileSync(promptFile, 'utf8'),
      '--allowedTools',
      template.allowed_tools.join(','),
      ...c.agent.extra_args,
      ...(sessionId ? ['--resume', sessionId] : []),
    ];
    const budget = c.budgets.task_usd;
    if (budget > 0) {
      const spent = (await this.d.tasks.get(task.id))?.cost_usd ?? 0;
      if (spent >= budget)
        throw new Error(`task budget of $${budget.toFixed(2)} is spent ($${spent.toFixed(2)} so far); raise budgets.task_usd to continue`);
      // Claude Code stops itself at this amount; Factory checks again after the run.
      args.push('--max-budget-usd', (budget - spent).toFixed(2));
    }
    return { type, template, args, revision };
  }

  /** Protocol objects (handoff, question, message, learning) found in the agent's text, each once. */
  private protocolCollector(task: TaskRow) {
    const objects: ProtocolObject[] = [];
    const seen = new Set<string>();
    const collect = (text: string): 'clarification' | void => {
      for (const obj of extractProtocolObjects(text)) {
        const key = JSON.stringify(obj);
        if (seen.has(key)) continue;
        seen.add(key);
        objects.push(obj);
        if (obj.type === 'message') this.d.bus.emit('agent.message', { task, message: obj });
        if (obj.type === 'clarification_needed' && typeof obj.question === 'string' && obj.question.trim()) return 'clarification';
      }
    };
    return { objects, collect };
  }

  /** The run's row gets its outcome; the task adds the run's cost and keeps the session. */
  private async record(task: TaskRow, ctx: ExecContext, runId: number, run: RunResult): Promise<void> {
    const r = run.result;
    await this.d.runs.update(runId, {
      ended_at: new Date().toISOString(),
      outcome: run.outcome,
      error: scrub(run.error).slice(0, 4000),
      session_id: run.sessionId,
      cost_usd: r?.costUsd ?? 0,
      input_tokens: r?.usage.input_tokens ?? 0,
      output_tokens: r?.usage.output_tokens ?? 0,
      cache_read_tokens: r?.usage.cache_read_tokens ?? 0,
      cache_creation_tokens: r?.usage.cache_creation_tokens ?? 0,
      duration_ms: run.durationMs,
      num_turns: r?.numTurns ?? 0,
    });
    const fresh = (await this.d.tasks.get(task.id)) ?? task;
    // The cost was spent either way; the session only belongs to the task while this worker holds it.
    const lost = ctx.abortReason() === 'lease_lost';
    await this.d.tasks.update(task.id, {
      session_id: lost ? fresh.session_id : run.sessionId || fresh.session_id,
      cost_usd: fresh.cost_usd + (r?.costUsd ?? 0),
      input_tokens: fresh.input_tokens + (r?.usage.input_tokens ?? 0),
      output_tokens: fresh.output_tokens + (r?.usage.output_tokens ?? 0),
      cache_read_tokens: fresh.cache_read_tokens + (r?.usage.cache_read_tokens ?? 0),
      cache_creation_tokens: fresh.cache_creation_tokens + (r?.usage.cache_creation_tokens ?? 0),
    });
  }

  private agentEnv(task: TaskRow, type: string): Record<string, string> {
    const c = this.d.config;
    return {
      ...this.d.baseEnv,
      // factory-env (and the other Factory CLIs) are on the agent's PATH.
      PATH: [path.join(PACKAGE_ROOT, 'bin'), this.d.baseEnv.PATH].filter(Boolean).join(':'),
      ...(c.secrets.anthropicApiKey ? { ANTHROPIC_API_KEY: c.secrets.anthropicApiKey } : {}),
      ...c.agent.env,
      FACTORY_TASK_ID: String(task.id),
      FACTORY_AGENT_TYPE: type,
      FACTORY_API_URL: this.d.apiUrl,
      FACTORY_API_TOKEN: this.d.taskToken(task.id),
      ...(task.workflow_id ? { FACTORY_WORKFLOW_ID: String(task.workflow_id) } : {}),
    };
  }
}
