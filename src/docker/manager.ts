// Docker test and preview environments: `docker compose up` of the agent's compose file with our
// override (labels, Traefik route, no host ports), health waiting, teardown when the task ends or the
// PR is merged/closed, and boot-time cleanup of what a crash left behind.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { TaskRow } from '../db/repositories/tasks.js';
import type { KvRepo } from '../db/repositories/kv.js';
import type { EnvironmentRow, EnvironmentsRepo, EnvType } from '../db/repositories/environments.js';
import type { EventBus } from '../events/bus.js';
import type { TaskService } from '../tasks/service.js';
import type { GitHubClient } from '../integrations/github.js';
import type { RepoSpec } from '../git/repo-spec.js';
import { isFinished, isTerminal } from '../domain/task-status.js';
import { DomainError, coerceError, conflict, invalidInput, notFound } from '../errors.js';
import { KeyedMutex } from '../git/mutex.js';
import { worktreeKey } from '../orchestrator/worktree.js';
import { nowIso } from '../db/time.js';
import { scrub } from '../secrets.js';
import { buildOverride, dnsPart, inspectCompose, naming, resolveComposePath, SERVICE_NAME, type ComposeInfo } from './compose.js';
import { DockerCli, DockerUnavailableError, tail, type DockerResult } from './docker-cli.js';
import { waitHealthy } from './health.js';
import { EnvironmentTeardown, type RemoveResult } from './teardown.js';
import { reconcileContainers } from './reconcile.js';

export { parsePsLabels } from './health.js';

export interface UpInput {
  taskId: number;
  /** Compose file, relative to the task's worktree. */
  compose: string;
  service: string;
  port: number;
  preview: boolean;
  /** Path probed over HTTP when the container has no health check (default "/"). */
  healthPath?: string;
}

export interface EnvironmentManagerDeps {
  config: Config;
  logger: Logger;
  tasks: TaskService;
  bus: EventBus;
  kv: KvRepo;
  repo: EnvironmentsRepo;
  github: GitHubClient;
  repoSpec: (repo: string) => RepoSpec;
  /** Defaults to the configured docker command with config.baseEnv + docker.env. */
  docker?: DockerCli;
  timeouts?: Partial<{ upMs: number; downMs: number; commandMs: number; healthPollMs: number; httpProbeMs: number }>;
  /** This host's name in environments.machine (default os.hostname()). */
  machine?: string;
}

export type { RemoveResult } from './teardown.js';

export class EnvironmentManager {
  readonly docker: DockerCli;
  private readonly locks = new KeyedMutex();
  /** Taking environments down (compose down, the row, the override file). */
  private readonly down_: EnvironmentTeardown;
  private readonly log: Logger;
  private readonly dir: string;
  private readonly t: { upMs: number; downMs: number; commandMs: number; healthPollMs: number; httpProbeMs: number };
  private abort = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<unknown> | null = null;
  private available: { ok: boolean | null; checkedAt: string | null; error: string } = { ok: null, checkedAt: null, error: '' };
  /** instanceId(), read (or made) once: concurrent first callers must not each make their own. */
  private instance: Promise<string> | null = null;

  private readonly machine: string;

  constructor(private readonly d: EnvironmentManagerDeps) {
    this.machine = d.machine ?? hostname();
    this.log = d.logger;
    this.dir = path.join(d.config.data_dir, 'environments');
    this.docker =
      d.docker ??
      new DockerCli({
        command: d.config.docker.command,
        env: { ...d.config.baseEnv, ...d.config.docker.env },
        cwd: d.config.data_dir,
      });
    this.t = { upMs: 20 * 60_000, downMs: 3 * 60_000, commandMs: 60_000, healthPollMs: 500, httpProbeMs: 5_000, ...d.timeouts };
    this.down_ = new EnvironmentTeardown({
      docker: this.docker,
      repo: d.repo,
      log: this.log,
      locks: this.locks,
      overrideDir: this.dir,
      dataDir: d.config.data_dir,
      downMs: this.t.downMs,
    });
  }

  // ------------------------------------------------------------------ lifecycle

  /** Boot: cleans up after a crash, then polls previews on an interval. */
  async start(): Promise<void> {
    this.abort = new AbortController();
    try {
      await this.reconcile();
    } catch (err) {
      this.log.warn({ err: coerceError(err) }, 'environment cleanup at start failed; continuing');
    }
    const every = this.d.config.docker.preview_poll_seconds * 1000;
    this.timer = setInterval(() => {
      void this.pollPreviews().catch((err) => this.log.warn({ err: coerceError(err) }, 'preview poll failed'));
    }, every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.abort.abort();
    await this.polling?.catch(() => undefined);
  }

  async health(): Promise<Record<string, unknown>> {
    const environments = await this.d.repo.countLive();
    return {
      available: this.available.ok,
      checked_at: this.available.checkedAt,
      ...(this.available.error ? { error: this.available.error } : {}),
      environments,
    };
  }

  // ------------------------------------------------------------------ up

  async up(input: UpInput): Promise<EnvironmentRow> {
    const { config } = this.d;
    const { task, worktree, compose, info } = await this.checkUp(input);
    await this.ensureDocker({ taskId: task.id });

    const type: EnvType = input.preview ? 'preview' : 'test';
    const spec = this.spec(task.repo);
    const prNumber = task.pr_number ?? null;
    const n = await this.nameFor(type, task.id, prNumber, spec.slug);
    const host = `${n.hostLabel}.${config.docker.domain}`;
    const url = `https://${host}`;

    if (type === 'preview') {
      // One preview per task: a preview started before the PR existed gives way to the pr-<n> one.
      for (const other of await this.d.repo.live({ taskId: task.id, type: 'preview' })) {
        if (other.project !== n.project) await this.teardown(other, 'replaced by a newer preview of the same task');
      }
    }

    return this.locks.run(n.project, async () => {
      // The task may have ended while we waited for the lock; its teardown would then miss this row.
      const now = await this.d.tasks.get(task.id);
      if (now?.status !== 'in_progress')
        throw conflict(
          `Task ${task.id} is ${now?.status ?? 'gone'}: environments can only be started while its agent is running (in_progress)`,
        );
      const labels: Record<string, string> = {
        'factory.task-id': String(task.id),
        'factory.repo': spec.slug,
        'factory.env-type': type,
        ...(prNumber ? { 'factory.pr-number': String(prNumber) } : {}),
        'factory.created-at': nowIso(),
        'factory.instance': await this.instanceId(),
      };
      const overrideFile = this.writeOverride(n.project, input, host, labels, info);
      let row = await this.d.repo.upsertLive({
        task_id: task.id,
        repo: spec.slug,
        project: n.project,
        env_type: type,
        service: input.service,
        port: input.port,
        host,
        url,
        pr_number: prNumber,
        compose_file: compose.relative,
        override_file: overrideFile,
        worktree,
        machine: this.machine,
      });
      const files = ['-f', compose.absolute, '-f', overrideFile];
      this.log.info({ taskId: task.id, project: n.project, type, service: input.service, url }, 'starting environment');

      const health = await this.startAndWait(row, files, worktree, input);

      row = (await this.d.repo.update(row.id, {
        status: 'running',
        health: health.health,
        container_id: health.containerId,
        last_error: '',
      }))!;
      this.log.info({ taskId: task.id, project: n.project, url, health: health.health }, 'environment ready');
      if (type === 'preview') await this.announcePreview(task.id, url);
      return row;
    });
  }

  /** The compose project name; two repositories with a PR of the same number get the repository in the second's. */
  private async nameFor(type: EnvType, taskId: number, prNumber: number | null, slug: string) {
    const n = naming(type, taskId, type === 'preview' ? prNumber : null);
    const holder = type === 'preview' && prNumber ? await this.d.repo.liveByProject(n.project) : undefined;
    return holder && holder.repo && holder.repo !== slug ? naming(type, taskId, prNumber, dnsPart(slug)) : n;
  }

  /** The compose override with Factory's labels and the Traefik route; returns its path. */
  private writeOverride(project: string, input: UpInput, host: string, labels: Record<string, string>, compose: ComposeInfo): string {
    const { docker } = this.d.config;
    mkdirSync(this.dir, { recursive: true });
    const file = path.join(this.dir, `${project}.override.yml`);
    const override = buildOverride({
      project,
      service: input.service,
      port: input.port,
      host,
      labels,
      network: docker.network,
      entrypoint: docker.entrypoint,
      certResolver: docker.cert_resolver,
      compose,
    });
    writeFileSync(file, override);
    return file;
  }

  /** docker compose up, then the wait until the service answers; a failure tears it down and throws. */
  private async startAndWait(row: EnvironmentRow, files: string[], worktree: string, input: UpInput) {
    const upRes = await this.docker.run(['compose', '-p', row.project, ...files, 'up', '-d', '--build', input.service], {
      cwd: worktree,
      timeoutMs: this.t.upMs,
      signal: this.abort.signal,
    });
    if (!upRes.ok) {
      const why = upRes.timedOut
        ? `docker compose up did not finish within ${Math.round(this.t.upMs / 60_000)} min`
        : `docker compose up failed (exit code ${upRes.exitCode ?? upRes.spawnError})`;
      throw await this.failUp(row, files, worktree, why, upRes);
    }
    const health = await waitHealthy(this.docker, {
      project: row.project,
      service: input.service,
      port: input.port,
      healthPath: input.healthPath ?? '/',
      network: this.d.config.docker.network,
      timeoutS: this.d.config.docker.health_timeout_seconds,
      pollMs: this.t.healthPollMs,
      probeMs: this.t.httpProbeMs,
      commandMs: this.t.commandMs,
      signal: this.abort.signal,
    });
    if (!health.ok) throw await this.failUp(row, files, worktree, health.error);

    return health;
  }

  /** The task may start an environment now, and its compose file has the service asked for. */
  private async checkUp(input: UpInput) {
    if (!SERVICE_NAME.test(input.service)) throw invalidInput('service', 'must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$');
    if (!Number.isInteger(input.port) || input.port < 1 || input.port > 65535)
      throw invalidInput('port', 'must be an integer between 1 and 65535');
    const task = await this.d.tasks.get(input.taskId);
    if (!task) throw notFound('Task');
    if (task.status !== 'in_progress') {
      throw conflict(`Task ${task.id} is ${task.status}: environments can only be started while its agent is running (in_progress)`);
    }
    const worktree = task.worktree_path || path.join(this.d.config.worktrees_dir, worktreeKey(task));
    if (!existsSync(worktree)) throw conflict(`Task ${task.id} has no worktree on the Factory host (${worktree})`);
    const compose = resolveComposePath(worktree, input.compose);
    const info = inspectCompose(readFileSync(compose.absolute, 'utf8'));
    if (!info.services.has(input.service) && !info.hasInclude) {
      const known = [...info.services.keys()].join(', ') || 'none';
      throw invalidInput('service', `"${input.service}" is not defined in ${compose.relative} (services: ${known})`);
    }
    return { task, worktree, compose, info };
  }

  /** Tears the failed environment down and builds the error the agent sees, with the logs tail. */
  private async failUp(row: EnvironmentRow, files: string[], cwd: string, why: string, res?: DockerResult): Promise<DomainError> {
    const logs = await this.docker.run(['compose', '-p', row.project, ...files, 'logs', '--no-color', '--tail', '60', row.service], {
      cwd,
      timeoutMs: this.t.commandMs,
    });
    const parts = [why];
    if (res && (res.stderr.trim() || res.stdout.trim()))
      parts.push(`docker compose output (tail):\n${tail(`${res.stdout}\n${res.stderr}`, 30, 3000)}`);
    const logText = `${logs.stdout}\n${logs.stderr}`.trim();
    parts.push(logText ? `logs of ${row.service} (tail):\n${tail(logText, 60, 4000)}` : `no logs from ${row.service}`);
    const message = scrub(parts.join('\n\n'));
    this.log.warn({ taskId: row.task_id, project: row.project, error: why }, 'environment failed to start; tearing it down');
    const down = await this.down_.composeDown(row);
    if (down.ok) {
      await this.d.repo.markRemoved(row.id, 'failed', message);
      this.down_.removeOverride(row);
    } else {
      await this.d.repo.update(row.id, { status: 'failed', last_error: message });
    }
    return new DomainError('upstream_failed', 'environment_failed', `Environment ${row.project} did not come up: ${message}`);
  }

  /** Stores the preview URL on the task and announces it once per (task, url). */
  private async announcePreview(taskId: number, url: string): Promise<void> {
    const key = `environments:preview_notified:${taskId}`;
    const seen = (await this.d.kv.get<string[]>(key)) ?? [];
    const current = await this.d.tasks.get(taskId);
    const task = current && current.preview_url !== url ? ((await this.d.tasks.update(taskId, { preview_url: url })) ?? current) : current;
    if (!task || seen.includes(url)) return;
    await this.d.kv.set(key, [...seen, url]);
    this.d.bus.emit('task.preview', { task, url });
  }

  // ------------------------------------------------------------------ down, status

  /** Tears down the task's live environments (of one type, or all). */
  async down(taskId: number, type?: EnvType, reason = 'requested by the agent'): Promise<RemoveResult[]> {
    const all = await this.d.repo.live({ taskId, type });
    const rows = all.filter((r) => this.mine(r));
    const elsewhere = all.find((r) => !this.mine(r));
    if (!rows.length && elsewhere) throw this.notHere(elsewhere);
    if (rows.length) await this.ensureDocker({ taskId });
    const out: RemoveResult[] = [];
    for (const row of rows) out.push(await this.teardown(row, reason));
    return out;
  }

  /** Tears down one environment by our id (operator route). */
  async remove(id: number, reason = 'removed by an operator'): Promise<RemoveResult | undefined> {
    const row = await this.d.repo.get(id);
    if (!row) return undefined;
    if (row.removed_at) return { ok: true, row, already: true };
    if (!this.mine(row)) throw this.notHere(row);
    await this.ensureDocker({ taskId: row.task_id });
    return this.teardown(row, reason);
  }

  /** Whether this host's Docker runs the environment (several worker hosts share the table). */
  private mine(row: Pick<EnvironmentRow, 'machine'>): boolean {
    return !row.machine || row.machine === this.machine;
  }

  private notHere(row: EnvironmentRow): DomainError {
    return conflict(
      `environment ${row.id} runs on ${row.machine}, not on this host (${this.machine}); ask that host's Factory (the worker that ran task ${row.task_id}), or let its poller remove it when the task or PR ends`,
    );
  }

  status(taskId: number): Promise<EnvironmentRow[]> {
    return this.d.repo.list({ taskId, includeRemoved: false });
  }

  /** Newest first; torn-down ones too when `includeRemoved`. */
  list(includeRemoved = false, taskId?: number): Promise<EnvironmentRow[]> {
    return this.d.repo.list({ includeRemoved, taskId });
  }

  get(id: number): Promise<EnvironmentRow | undefined> {
    return this.d.repo.get(id);
  }

  /** `docker compose down -v --remove-orphans` of the row's project; the row is marked removed on success. */
  teardown(row: EnvironmentRow, reason: string): Promise<RemoveResult> {
    return this.down_.teardown(row, reason);
  }

  // ------------------------------------------------------------------ cleanup

  /** Bus listener: a task that stopped working loses its test environments. */
  async onTaskStatus(task: TaskRow): Promise<void> {
    // Environments on other hosts are theirs: their poller sees the task's end.
    const live = (await this.d.repo.live({ taskId: task.id })).filter((r) => this.mine(r));
    if (!live.length) return;
    for (const row of live) {
      if (row.env_type === 'preview' && !row.pr_number && task.pr_number) await this.d.repo.update(row.id, { pr_number: task.pr_number });
    }
    if (!isFinished(task.status)) return;
    for (const row of live) {
      // A preview outlives its task until the PR is merged or closed; without a PR there is nothing to wait for.
      const keep = row.env_type === 'preview' && (!isTerminal(task.status) || Boolean(row.pr_number ?? task.pr_number));
      if (keep) continue;
      await this.teardown(row, `task ${task.id} is ${task.status}`);
    }
  }

  /**
   * Previews whose PR is merged or closed, or older than docker.preview_max_age_hours, are torn down;
   * so are test environments whose task has ended (a missed event). Tests call this directly.
   */
  async pollPreviews(): Promise<EnvironmentRow[]> {
    const run = this.pollOnce();
    this.polling = run;
    try {
      return await run;
    } finally {
      if (this.polling === run) this.polling = null;
    }
  }

  private async pollOnce(): Promise<EnvironmentRow[]> {
    const removed: EnvironmentRow[] = [];
    const live = (await this.d.repo.live()).filter((r) => this.mine(r));
    if (!live.length) return removed;
    if (!(await this.checkDocker())) return removed;
    const maxAgeMs = this.d.config.docker.preview_max_age_hours * 3_600_000;
    for (const row of live) {
      if (this.abort.signal.aborted) break;
      const task = await this.d.tasks.get(row.task_id);
      let reason: string | undefined;
      if (row.env_type === 'test') {
        if (!task || isFinished(task.status)) reason = task ? `task ${task.id} is ${task.status}` : `task ${row.task_id} no longer exists`;
      } else if (Date.now() - Date.parse(row.created_at) > maxAgeMs) {
        reason = `older than docker.preview_max_age_hours (${this.d.config.docker.preview_max_age_hours} h)`;
      } else if (!task) {
        reason = `task ${row.task_id} no longer exists`;
      } else {
        const pr = row.pr_number ?? task.pr_number;
        if (pr && !row.pr_number) await this.d.repo.update(row.id, { pr_number: pr });
        if (!pr) {
          if (isTerminal(task.status)) reason = `task ${task.id} is ${task.status} without a pull request`;
        } else if (this.d.github.enabled) {
          reason = await this.prClosedReason(row.repo || task.repo, pr, row);
        }
      }
      if (!reason) continue;
      const r = await this.teardown(row, reason);
      if (r.ok && !r.already) removed.push(r.row);
    }
    return removed;
  }

  private async prClosedReason(repo: string, n: number, row: EnvironmentRow): Promise<string | undefined> {
    try {
      const spec = this.spec(repo);
      const pr = await this.d.github.getPullRequest(spec.owner, spec.name, n);
      if (pr.state === 'closed') return pr.merged ? `PR #${n} was merged` : `PR #${n} was closed`;
    } catch (err) {
      this.log.warn({ err: coerceError(err), project: row.project, pr: n }, 'could not read the PR state of a preview; keeping it');
    }
    return undefined;
  }

  /**
   * Boot: containers labelled factory.task-id whose task has ended (or is unknown) are torn down;
   * rows whose containers are gone are closed. Docker being unavailable only skips this.
   */
  async reconcile(): Promise<void> {
    // Never used here: nothing of ours can be running (and a test run never touches the host's docker).
    if (!(await this.d.repo.any())) return;
    if (!(await this.checkDocker())) {
      this.log.info({ error: this.available.error }, 'docker unavailable: skipped the environment cleanup at start');
      return;
    }
    await reconcileContainers({
      docker: this.docker,
      repo: this.d.repo,
      tasks: this.d.tasks,
      log: this.log,
      down: this.down_,
      machine: this.machine,
      commandMs: this.t.commandMs,
      instanceId: await this.instanceId(),
    });
  }

  // ------------------------------------------------------------------ helpers

  /** A random id per installation (stored with the data), put on every container as factory.instance. */
  instanceId(): Promise<string> {
    if (!this.instance) {
      const made = this.readInstanceId();
      this.instance = made;
      // A failed read is not remembered: the next caller tries again.
      made.catch(() => {
        if (this.instance === made) this.instance = null;
      });
    }
    return this.instance;
  }

  private async readInstanceId(): Promise<string> {
    let id = await this.d.kv.get<string>('environments:instance_id');
    if (!id) {
      id = randomBytes(6).toString('hex');
      await this.d.kv.set('environments:instance_id', id);
    }
    return id;
  }

  private async ensureDocker(ctx: { taskId?: number }): Promise<void> {
    try {
      await this.docker.ensureAvailable(this.abort.signal);
      this.available = { ok: true, checkedAt: nowIso(), error: '' };
    } catch (err) {
      if (err instanceof DockerUnavailableError) {
        this.available = { ok: false, checkedAt: nowIso(), error: err.message };
        this.log.warn({ taskId: ctx.taskId, error: err.message }, 'docker unavailable for an environment request');
      }
      throw err;
    }
  }

  private async checkDocker(): Promise<boolean> {
    try {
      await this.ensureDocker({});
      return true;
    } catch (err) {
      if (err instanceof DockerUnavailableError) return false;
      throw err;
    }
  }

  private spec(repo: string): RepoSpec {
    try {
      return this.d.repoSpec(repo);
    } catch {
      const [owner = 'local', name = repo || 'unknown'] = repo.includes('/') ? repo.split('/') : ['local', repo];
      return { slug: repo, owner, name, cloneUrl: '', configured: false };
    }
  }
}
