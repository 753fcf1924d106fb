// Runs one task end to end: workspace → agent → results (commit, push, PR) → status.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { PACKAGE_ROOT, type Config, type AgentType } from '../config.js';
import type { TaskRow, TaskPatch } from '../db/repositories/tasks.js';
import type { LogsRepo } from '../db/repositories/logs.js';
import type { RunsRepo } from '../db/repositories/runs.js';
import type { TaskService } from '../tasks/service.js';
import type { EventBus } from '../events/bus.js';
import { handsBack, type ExecContext, type ExecResult } from '../queue/scheduler.js';
import { parseRepoSpec, type RepoSpec } from '../git/repo-spec.js';
import { GitUnreachableError, slugify, type Workspace, type Worktree } from '../git/workspace.js';
import { isTransientGitHubError, type GitHubClient } from '../integrations/github.js';
import type { PendingPullRequests } from '../prloop/pending-pr.js';
import { runAgent, type RunResult } from '../agents/runner.js';
import type { AgentSandbox } from '../agents/sandbox/index.js';
import { extractProtocolObjects, type ProtocolObject, type StreamEvent } from '../agents/protocol.js';
import { buildPrompt, buildResumePrompt, truncate } from '../agents/prompt.js';
import { LogWriter } from './log-writer.js';
import { PendingWrites } from './pending-writes.js';
import { StallDetector } from '../agents/stall.js';
import { detectUsageLimit, detectUsageLimitText, type UsageLimit } from '../agents/limits.js';
import { parseRevision } from '../domain/revision.js';
import { clarificationSection, parseClarification, type ClarificationContext } from './clarification.js';
import { coerceError } from '../errors.js';
import { scrub } from '../secrets.js';

export interface ExecutorDeps {
  config: Config;
  logger: Logger;
  tasks: TaskService;
  logs: LogsRepo;
  runs: RunsRepo;
  bus: EventBus;
  workspace: Workspace;
  github: GitHubClient;
  /** Where a PR GitHub would not take right now waits to be opened. */
  pendingPrs: Pick<PendingPullRequests, 'defer'>;
  /** Wraps each agent run in the sandbox (or not, by config and by what the machine allows). */
  sandbox: AgentSandbox;
  /** PATH, HOME and friends for the agent and git. */
  baseEnv: Record<string, string>;
  apiUrl: string;
  /** A token that lets the agent's tools call its own task's routes. */
  taskToken: (taskId: number) => string;
  /**
   * Several workers (PostgreSQL): a standalone task's work is pushed as a WIP checkpoint this often
   * (and when it stops without finishing), so another worker can take it over. 0: never.
   */
  checkpointMs?: number;
}

/** What the agent produced, handed to listeners after every run. */
export interface RunReport {
  task: TaskRow;
  run: RunResult;
  /** The task_runs row of this run. */
  runId: number;
  protocol: ProtocolObject[];
  handoff: ProtocolObject | undefined;
  learnings: string[];
  finalText: string;
  changedFiles: string[];
  status: ExecResult['status'];
}

export type PromptSource = (task: TaskRow, info: { resume: boolean }) => Promise<string | undefined> | string | undefined;
export type ProtocolHandler = (task: TaskRow, obj: ProtocolObject) => void;
export type RunListener = (report: RunReport) => Promise<void> | void;
/** Workflows take over how a step's success is finished (no PR per step). */
export type Finisher = (task: TaskRow, wt: Worktree, spec: RepoSpec, report: Omit<RunReport, 'status'>) => Promise<ExecResult>;

/** How a task waiting for an unreachable git host says so in its error field. */
const WAITING_FOR_HOST = 'Waiting for the git host';

export class TaskExecutor {
  private readonly promptSources: PromptSource[] = [];
  private readonly protocolHandlers: ProtocolHandler[] = [];
  private readonly runListeners: RunListener[] = [];
  private readonly eventListeners: Array<(task: TaskRow, ev: StreamEvent) => void> = [];
  private finisherFor: (task: TaskRow) => Finisher | undefined = () => undefined;
  systemPromptFor: (task: TaskRow) => Promise<string | undefined> | string | undefined = () => undefined;

  constructor(private readonly d: ExecutorDeps) {
    // Answers to earlier questions always travel with the prompt (a resumed session may be gone).
    this.addPromptSource((task) => clarificationSection(parseClarification(task.clarification_context)));
  }

  addPromptSource(fn: PromptSource): void {
    this.promptSources.push(fn);
  }
  onProtocol(fn: ProtocolHandler): void {
    this.protocolHandlers.push(fn);
  }
  onRun(fn: RunListener): void {
    this.runListeners.push(fn);
  }
  /** Every parsed stream event of a running agent (progress notes, stall detection). */
  onAgentEvent(fn: (task: TaskRow, ev: StreamEvent) => void): void {
    this.eventListeners.push(fn);
  }
  setFinisher(fn: (task: TaskRow) => Finisher | undefined): void {
    this.finisherFor = fn;
  }

  repoSpec(repo: string): RepoSpec {
    const c = this.d.config;
    return parseRepoSpec(repo, { repos: c.repos, defaultOrg: c.default_org, cloneBase: c.github.clone_base });
  }

  readonly execute = async (task: TaskRow, ctx: ExecContext): Promise<ExecResult> => {
    const log = new LogWriter(this.d.logs, task.id, (err) =>
      this.d.logger.error({ err: coerceError(err), taskId: task.id }, 'log write failed'),
    );
    try {
      return await this.executeWith(task, ctx, log);
    } catch (err) {
      const msg = scrub(coerceError(err).message);
      log.system(`error: ${msg}`);
      return { status: 'failed', error: msg };
    } finally {
      await log.flush();
    }
  };

  private async executeWith(task: TaskRow, ctx: ExecContext, log: LogWriter): Promise<ExecResult> {
    const spec = this.repoSpec(task.repo);
    log.system(`preparing workspace for ${spec.slug}`);
    let defaultBranch: string;
    try {
      defaultBranch = await this.d.workspace.sync(spec);
    } catch (err) {
      if (err instanceof GitUnreachableError) return this.waitForGitHost(task, log, err);
      throw err;
    }
    const branch = task.branch_name || `${this.d.config.git.branch_prefix}${task.id}-${slugify(task.title)}`;
    const base = task.base_branch || defaultBranch;
    const key = worktreeKey(task);
    let hadWorktree = existsSync(path.join(this.d.workspace.worktreePath(key), '.git'));
    const checkpoints = (this.d.checkpointMs ?? 0) > 0 && !task.workflow_id;
    // An earlier run started and the task ran elsewhere since (no worktree here, or ours is older than
    // the last checkpoint another worker pushed): start from that checkpoint.
    let restored: string | undefined;
    let checkpointed = false;
    if (checkpoints && task.session_id) {
      const cp = await this.d.workspace.fetchCheckpoint(spec, task.id);
      checkpointed = Boolean(cp);
      const elsewhere = cp && cp.origin !== '' && cp.origin !== this.d.workspace.checkpointOrigin(this.d.workspace.worktreePath(key));
      // A checkpoint the pushed branch already contains is old news (its task published since).
      if (cp && (!hadWorktree || elsewhere) && !(await this.d.workspace.branchContains(spec, branch, cp.commit))) {
        if (hadWorktree) {
          log.system('another worker ran this task after this host did: replacing the old worktree with its checkpoint');
          await this.d.workspace.remove(spec, key, branch);
          hadWorktree = false;
        }
        restored = cp.commit;
      }
    }
    const wt = await this.d.workspace.prepare(spec, key, branch, base, restored);
    if (restored) log.system(`taking over from another worker: the worktree starts at its WIP checkpoint ${restored.slice(0, 12)}`);
    task = (await this.d.tasks.update(task.id, { branch_name: branch, base_branch: base, worktree_path: wt.path })) ?? task;
    log.system(`worktree ${wt.path} on branch ${branch} (base ${base})`);

    const clar = parseClarification(task.clarification_context);
    const answered = clar.history.length > 0 && clar.history[clar.history.length - 1]!.response !== undefined && !clar.pending_question;
    // The Claude session can be resumed where its session store is: this host, or a shared store.
    const resume = Boolean(task.session_id) && (hadWorktree || (Boolean(restored) && this.d.config.agent.shared_session_store));
    if (resume && !answered) {
      // Interrupted mid-run: keep what the agent did as a checkpoint before it continues.
      if (await this.d.workspace.commitAll(wt.path, `WIP: checkpoint of task ${task.id} before resuming (attempt ${task.attempts})`)) {
        log.system('committed a WIP checkpoint of the interrupted work');
      }
    }
    const sections: string[] = [];
    const revision = parseRevision(task.revision_context);
    if (revision) sections.push(revision.text);
    for (const src of this.promptSources) {
      try {
        const s = await src(task, { resume });
        if (s) sections.push(s);
      } catch (err) {
        this.d.logger.warn({ err: coerceError(err), taskId: task.id }, 'prompt source failed; continuing without it');
      }
    }
    if (restored && !resume) {
      // A fresh session on another host: tell it what the interrupted attempt left behind.
      sections.push(
        `## Continuing interrupted work\n\nAn earlier attempt at this task stopped on another worker before it finished. Its work so far is committed in this checkout (the latest commit, "WIP: checkpoint of task ${task.id} …"). Read \`git log --stat origin/${base}..HEAD\` and the diff first, keep what is right, and finish the task from there.`,
      );
    }
    const reason = answered
      ? 'the person answered your question (see below).'
      : restored
        ? `the worker that ran this task stopped (attempt ${task.attempts}); this host continues from its last WIP checkpoint, which is checked out here.`
        : `Factory restarted while you were working (attempt ${task.attempts}). Your earlier edits are still in the worktree and were committed as a WIP checkpoint.`;
    const promptTask = revision ? { ...task, agent_type: 'coder_revision' } : task;
    const prompt = resume
      ? buildResumePrompt(reason, task, sections)
      : buildPrompt({ task: promptTask, repoSlug: spec.slug, branch, baseBranch: base, sections });

    this.d.bus.emit('agent.started', { task, branch });
    const cp = checkpoints ? this.startCheckpoints(task, spec, wt, log) : null;
    let result: Awaited<ReturnType<TaskExecutor['runOnce']>>;
    let run: RunResult;
    try {
      result = await this.runOnce(task, ctx, log, wt, spec, prompt, resume ? task.session_id : undefined);
      run = result.run;
      // A session that no longer exists cannot be resumed: start over with the full prompt and history.
      if (
        resume &&
        run.outcome !== 'success' &&
        /no conversation found|session .*not found/i.test(`${run.error}\n${run.stderrTail.join('\n')}`)
      ) {
        log.system('the earlier session is gone; starting a fresh session with the history in the prompt');
        const full = buildPrompt({ task, repoSlug: spec.slug, branch, baseBranch: base, sections });
        result = await this.runOnce(task, ctx, log, wt, spec, full, undefined);
        run = result.run;
      }
    } finally {
      await cp?.stop();
    }
    const res = await this.finish(task, ctx, log, wt, spec, run, result);
    // Unfinished work (shutdown, usage limit, a question) keeps its worktree here: push it as the last
    // checkpoint, since any worker may continue it. Finished work drops the checkpoint. A task another
    // worker has taken over keeps it untouched.
    if (!cp || ctx.abortReason() === 'lease_lost') return res;
    if (res.status === 'queued' || res.status === 'waiting_for_input') await cp.push();
    else if (cp.pushed() || checkpointed) await this.d.workspace.dropCheckpoint(spec, task.id).catch(() => undefined);
    return res;
  }

  /** Pushes a WIP checkpoint every checkpointMs while the agent runs (one at a time, skipped when nothing changed). */
  private startCheckpoints(task: TaskRow, spec: RepoSpec, wt: Worktree, log: LogWriter) {
    let lastTree: string | undefined;
    let pushed = false;
    let inFlight: Promise<void> = Promise.resolve();
    let busy = false;
    const push = (): Promise<void> => {
      if (busy) return inFlight;
      busy = true;
      inFlight = (async () => {
        try {
          const r = await this.d.workspace.pushCheckpoint(spec, wt.path, task.id, lastTree);
          if (r) {
            lastTree = r.tree;
            pushed = true;
            log.system(`pushed WIP checkpoint ${r.commit.slice(0, 12)}`);
          }
        } catch (err) {
          log.system(`WIP checkpoint failed: ${scrub(coerceError(err).message)}`);
        } finally {
          busy = false;
        }
      })();
      return inFlight;
    };
    const timer = setInterval(() => {
      void push();
    }, this.d.checkpointMs);
    timer.unref();
    return {
      push,
      pushed: () => pushed,
      stop: async () => {
        clearInterval(timer);
        await inFlight;
      },
    };
  }

  private async runOnce(
    task: TaskRow,
    ctx: ExecContext,
    log: LogWriter,
    wt: Worktree,
    spec: RepoSpec,
    prompt: string,
    sessionId: string | undefined,
  ) {
    const c = this.d.config;
    const revision = parseRevision(task.revision_context);
    // Follow-up work on an open PR (CI failure, review) is a revision, whatever the task's own type.
    const type = (revision ? 'coder_revision' : task.agent_type in c.agent_templates ? task.agent_type : 'coder') as AgentType;
    const template = c.agent_templates[type];
    const promptFile = (await this.systemPromptFor(task)) ?? template.system_prompt_file;
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
    const stall = new StallDetector(c.agent.stall_repeat_threshold);
    const writes = new PendingWrites((err, what) => this.d.logger.warn({ err: coerceError(err), taskId: task.id }, `${what} failed`));
    const runRow = await this.d.runs.start(task.id, task.attempts, revision?.kind ?? (sessionId ? 'resume' : 'run'));
    const protocol: ProtocolObject[] = [];
    const seen = new Set<string>();
    const collect = (text: string): string | void => {
      for (const obj of extractProtocolObjects(text)) {
        const key = JSON.stringify(obj);
        if (seen.has(key)) continue;
        seen.add(key);
        protocol.push(obj);
        if (obj.type === 'message' || obj.type === 'handoff_output') {
          for (const h of this.protocolHandlers) {
            try {
              h(task, obj);
            } catch (err) {
              this.d.logger.warn({ err: coerceError(err), taskId: task.id }, 'protocol handler failed');
            }
          }
        }
        if (obj.type === 'clarification_needed' && typeof obj.question === 'string' && obj.question.trim()) return 'clarification';
      }
    };
    const jail = await this.d.sandbox.prepare(c.agent.command, args, {
      taskId: task.id,
      worktree: wt.path,
      cache: this.d.workspace.cachePath(spec),
      env: this.agentEnv(task, type),
      allow: [...template.network_allow, ...(spec.networkAllow ?? [])],
      onRefused: (dest) => log.system(`sandbox: refused a connection to ${dest} (not on the network allowlist)`),
    });
    log.system(
      `starting agent ${c.agent.command} (${type}${sessionId ? `, resuming session ${sessionId}` : ''}${jail.command === 'bwrap' ? ', sandboxed' : ', NOT sandboxed'})`,
    );
    const run = await runAgent({
      command: jail.command,
      args: jail.args,
      cwd: wt.path,
      env: jail.env,
      totalTimeoutMs: Math.min(template.timeout_minutes, c.agent_timeout_minutes) * 60_000,
      idleTimeoutMs: c.agent_activity_timeout_minutes * 60_000,
      killGraceMs: c.agent.kill_grace_seconds * 1000,
      signal: ctx.signal,
      tailLines: c.agent.log_tail_lines,
      onStart: (pid, mark) => {
        ctx.setPid(pid);
        writes.add(this.d.runs.update(runRow.id, { pid, proc_mark: mark }), 'recording the agent process');
      },
      onLine: (stream, line) => log.write(stream, line),
      onEvent: (ev) => {
        for (const l of this.eventListeners) {
          try {
            l(task, ev);
          } catch (err) {
            this.d.logger.warn({ err: coerceError(err), taskId: task.id }, 'agent event listener failed');
          }
        }
        if (ev.kind === 'init' && ev.sessionId) {
          // Stored at once: if Factory dies mid-run, the next start resumes this session.
          writes.add(this.d.tasks.update(task.id, { session_id: ev.sessionId }), 'recording the session');
          writes.add(this.d.runs.update(runRow.id, { session_id: ev.sessionId }), 'recording the session');
        }
        const stuck = stall.see(ev);
        if (stuck) return stuck;
        if (ev.kind === 'text') return collect(ev.text);
        if (ev.kind === 'result') return collect(ev.result.text);
      },
    }).finally(() => jail.dispose());
    ctx.setPid(null);
    log.system(
      `agent ended: ${run.outcome}${run.error ? ` (${run.error.split('\n')[0]})` : ''} after ${Math.round(run.durationMs / 1000)} s`,
    );
    if (run.leftoversKilled) log.system(`killed ${run.leftoversKilled} process(es) the agent left running`);
    const r = run.result;
    // What the callbacks wrote during the run lands before the run's final record.
    await writes.settled();
    await this.d.runs.update(runRow.id, {
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
    return { run, protocol, runId: runRow.id };
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

  private async finish(
    task: TaskRow,
    ctx: ExecContext,
    log: LogWriter,
    wt: Worktree,
    spec: RepoSpec,
    run: RunResult,
    { protocol, runId }: { protocol: ProtocolObject[]; runId: number },
  ): Promise<ExecResult> {
    const handoff = [...protocol].reverse().find((o) => o.type === 'handoff_output');
    const learnings = collectLearnings(protocol);
    const finalText = run.result?.text ?? run.tail.slice(-5).join('\n');
    const base = { task, run, runId, protocol, handoff, learnings, finalText, changedFiles: [] as string[] };
    const summary = truncate(typeof handoff?.summary === 'string' ? handoff.summary : finalText, 2000);
    let result: ExecResult;
    let limit: ReturnType<typeof detectUsageLimit>;
    const keep = Boolean(task.workflow_id) || task.keep_worktree === 1;
    const overBudget = async () =>
      this.d.config.budgets.task_usd > 0 && ((await this.d.tasks.get(task.id))?.cost_usd ?? 0) > this.d.config.budgets.task_usd;

    if (run.outcome === 'aborted' && ctx.abortReason() === 'lease_lost') {
      // Another worker owns the task now: this copy only removes its local worktree, and reports and
      // records nothing (the task's row is the other worker's to write).
      log.system('stopped: another worker has taken this task over');
      await this.d.workspace.remove(spec, worktreeKey(task), task.branch_name || undefined).catch(() => undefined);
      return { status: 'failed', error: 'lease lost to another worker' };
    }
    if (run.outcome === 'aborted') {
      // The scheduler decides: a cancel ends the task, a shutdown puts it back for the next boot.
      result = handsBack(ctx.abortReason())
        ? { status: 'queued', countAttempt: false }
        : { status: 'failed', error: 'Cancelled by request' };
      if (!handsBack(ctx.abortReason()) && !keep) await this.cleanup(spec, task, log);
    } else if (run.outcome === 'stopped' && run.terminationReason === 'clarification') {
      const q = [...protocol].reverse().find((o) => o.type === 'clarification_needed')!;
      const context = addQuestion(parseClarification(task.clarification_context), q);
      log.system(`agent asked: ${String(q.question)}`);
      result = { status: 'waiting_for_input', patch: { clarification_context: JSON.stringify(context) } };
    } else if ((run.outcome === 'agent_error' || run.outcome === 'crashed') && (limit = detectUsageLimit(run))) {
      result = await this.usageLimited(task, log, limit);
    } else if (run.outcome === 'success' && (await overBudget())) {
      const spent = (await this.d.tasks.get(task.id))?.cost_usd ?? 0;
      result = {
        status: 'failed',
        error: `Task budget exceeded: spent $${spent.toFixed(2)} of $${this.d.config.budgets.task_usd.toFixed(2)} (budgets.task_usd)`,
      };
      if (!keep) await this.cleanup(spec, task, log);
    } else if (run.outcome === 'success') {
      const finisher = this.finisherFor(task);
      result = finisher ? await finisher(task, wt, spec, base) : await this.publish(task, log, wt, spec, summary);
      // What the run changed, for the handoff (after publish: everything is committed by then).
      if (!finisher) base.changedFiles = await this.d.workspace.changedFiles(wt.path, wt.baseBranch).catch(() => []);
      if (result.status !== 'waiting_for_input' && !keep) await this.cleanup(spec, task, log);
    } else {
      const error = truncate(scrub(run.error), 2000);
      result = { status: 'failed', error };
      if (!keep) await this.cleanup(spec, task, log);
    }
    if (result.status !== 'queued') {
      result.patch = { result_summary: summary, ...result.patch };
    }
    const report: RunReport = { ...base, status: result.status };
    for (const l of this.runListeners) {
      try {
        await l(report);
      } catch (err) {
        this.d.logger.warn({ err: coerceError(err), taskId: task.id }, 'run listener failed');
      }
    }
    // A revision is done once its run ended one way or the other.
    if (result.status !== 'queued' && task.revision_context) result.patch = { ...result.patch, revision_context: '' };
    return result;
  }

  /**
   * Not the task's fault: pause the queue until the limit resets and resume this task then, without
   * burning an attempt; but a task that meets a limit on every run in a row fails instead of looping.
   */
  private async usageLimited(task: TaskRow, log: LogWriter, limit: UsageLimit): Promise<ExecResult> {
    const cap = this.d.config.agent.max_usage_limit_pauses;
    // This run's row is already closed with the limit text as its error.
    const streak = countTrailing(await this.d.runs.forTask(task.id), (r) => detectUsageLimitText(r.error));
    if (streak > cap) {
      return {
        status: 'failed',
        error: `The agent hit a usage limit on ${streak} runs in a row (agent.max_usage_limit_pauses is ${cap}): ${limit.message}`,
      };
    }
    const until =
      limit.resetAt && limit.resetAt.getTime() > Date.now()
        ? limit.resetAt
        : new Date(Date.now() + this.d.config.agent.usage_limit_backoff_minutes * 60_000);
    log.system(
      `usage limit reached (${limit.message}); the task waits until ${until.toISOString()} (pause ${streak} of at most ${cap} in a row)`,
    );
    this.d.bus.emit('agent.usage_limit', { task, until, message: limit.message });
    return { status: 'queued', notBefore: until, countAttempt: false };
  }

  /**
   * The git host is unreachable: the task waits (queued, attempt not counted) and retries with a
   * growing delay, its error saying since when, until queue.unreachable_retry_minutes have passed.
   */
  private waitForGitHost(task: TaskRow, log: LogWriter, err: GitUnreachableError): ExecResult {
    const since = new RegExp(`^${WAITING_FOR_HOST} since (\\S+):`).exec(task.error)?.[1];
    const start = since && !Number.isNaN(Date.parse(since)) ? Date.parse(since) : Date.now();
    const waited = Date.now() - start;
    const limitMs = this.d.config.queue.unreachable_retry_minutes * 60_000;
    if (waited >= limitMs) return { status: 'failed', error: `Gave up after ${Math.round(waited / 60_000)} min: ${err.message}` };
    const delay = Math.min(5 * 60_000, Math.max(2000, waited));
    log.system(`${err.message}; retrying in ${Math.round(delay / 1000)} s`);
    return {
      status: 'queued',
      notBefore: new Date(Date.now() + delay),
      countAttempt: false,
      patch: { error: `${WAITING_FOR_HOST} since ${new Date(start).toISOString()}: ${err.message}` },
    };
  }

  /** Commits, pushes and opens (or reuses) the pull request of a standalone task. */
  async publish(
    task: TaskRow,
    log: LogWriter,
    wt: Worktree,
    spec: RepoSpec,
    summary: string,
    prTitle?: string,
    prBody?: string,
  ): Promise<ExecResult> {
    const committed = await this.d.workspace.commitAll(wt.path, `${task.title}\n\nFactory task ${task.id} (${task.agent_type}).`);
    if (committed) log.system("committed the agent's uncommitted changes");
    const ahead = await this.d.workspace.commitsAhead(wt.path, wt.baseBranch);
    if (ahead === 0) {
      log.system('no changes compared with the base branch: nothing to push, no pull request');
      return { status: 'done', patch: { result_summary: `No code changes. ${summary}`.trim() } };
    }
    await this.d.workspace.push(spec, wt.path, wt.branch, wt.baseBranch);
    log.system(`pushed ${ahead} commit(s) to ${wt.branch}`);
    if (task.pr_number && task.pr_url) {
      log.system(`updated the existing pull request ${task.pr_url}`);
      return { status: 'in_review', patch: { pr_url: task.pr_url, pr_number: task.pr_number } };
    }
    if (!this.d.github.enabled) {
      log.system('GITHUB_TOKEN is not set: the branch is pushed but no pull request was opened');
      return { status: 'in_review', patch: {} };
    }
    const request = {
      taskId: task.id,
      owner: spec.owner,
      repo: spec.name,
      head: wt.branch,
      base: wt.baseBranch,
      title: prTitle ?? task.title,
      body: prBody ?? prBodyFor(task, summary),
    };
    let pr;
    try {
      pr = await this.d.github.openPullRequest(request);
    } catch (err) {
      if (!isTransientGitHubError(err)) throw err;
      // The work is done and pushed: the PR is GitHub's problem, not the task's. It is opened later.
      const note = await this.d.pendingPrs.defer(request, (err as Error).message);
      log.system(note);
      return { status: 'in_review', patch: { error: note } };
    }
    log.system(`opened pull request ${pr.html_url}`);
    return { status: 'in_review', patch: { pr_url: pr.html_url, pr_number: pr.number } };
  }

  async cleanup(spec: RepoSpec, task: TaskRow, log?: LogWriter): Promise<void> {
    try {
      await this.d.workspace.remove(spec, worktreeKey(task), task.branch_name || undefined);
      await this.d.tasks.update(task.id, { worktree_path: '' });
      log?.system('worktree removed');
    } catch (err) {
      this.d.logger.warn({ err: coerceError(err), taskId: task.id }, 'could not remove worktree');
    }
  }
}

/** A workflow's steps share one worktree; a standalone task has its own. */
export function worktreeKey(task: Pick<TaskRow, 'id' | 'workflow_id'>): string {
  return task.workflow_id ? `workflow-${task.workflow_id}` : `task-${task.id}`;
}

function prBodyFor(task: TaskRow, summary: string): string {
  return [
    summary ? `## Summary\n\n${summary}` : '',
    task.description ? `## Task\n\n${truncate(task.description, 4000)}` : '',
    `---\nOpened by Factory for task ${task.id} (${task.agent_type}).`,
  ]
    .filter(Boolean)
    .join('\n\n');
}

function collectLearnings(protocol: ProtocolObject[]): string[] {
  const out: string[] = [];
  for (const o of protocol) {
    if (o.type === 'learning' && typeof o.content === 'string') out.push(o.content);
    if (o.type === 'handoff_output' && Array.isArray(o.learnings)) {
      for (const l of o.learnings) if (typeof l === 'string' && l.trim()) out.push(l.trim());
    }
  }
  return [...new Set(out)].slice(0, 20);
}

function addQuestion(ctx: ClarificationContext, q: ProtocolObject): ClarificationContext {
  const askedAt = new Date().toISOString();
  const question = String(q.question).slice(0, 4000);
  return {
    ...ctx,
    pending_question: question,
    asked_at: askedAt,
    options: Array.isArray(q.options) ? q.options.map(String).slice(0, 10) : undefined,
    context: typeof q.context === 'string' ? q.context.slice(0, 2000) : undefined,
    history: [...ctx.history, { question, asked_at: askedAt }],
  };
}

export type { TaskPatch };

/** How many of the last rows (newest backwards) satisfy `pred` without a break. */
function countTrailing<T>(rows: T[], pred: (row: T) => boolean): number {
  let n = 0;
  for (let i = rows.length - 1; i >= 0 && pred(rows[i]!); i--) n++;
  return n;
}
