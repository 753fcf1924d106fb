// The shape of config.yml: its zod schema with every default, the agent types, and the resolved
// Config type everything else receives. Reading files and the environment is config.ts.
import { z } from 'zod';

export const AGENT_TYPES = ['coder', 'coder_revision', 'reviewer', 'researcher', 'devops'] as const;
export type AgentType = (typeof AGENT_TYPES)[number];

export const DEFAULT_TOOLS: Record<AgentType, string[]> = {
  coder: ['Read', 'Edit', 'Write', 'Bash', 'Glob', 'Grep'],
  coder_revision: ['Read', 'Edit', 'Write', 'Bash', 'Glob', 'Grep'],
  reviewer: ['Read', 'Glob', 'Grep', 'Bash(git diff:*)', 'Bash(git log:*)'],
  researcher: ['WebSearch', 'WebFetch', 'Read', 'Write', 'Glob', 'Grep'],
  devops: ['Bash', 'Read', 'Edit', 'Write', 'Glob', 'Grep'],
};
export const DEFAULT_TIMEOUTS: Record<AgentType, number> = {
  coder: 60,
  coder_revision: 60,
  reviewer: 30,
  researcher: 30,
  devops: 30,
};

const str = z.string();

/** The model API, GitHub and the common package registries. */
const DEFAULT_NETWORK_ALLOW = [
  'api.anthropic.com',
  'github.com',
  'api.github.com',
  'codeload.github.com',
  'objects.githubusercontent.com',
  'raw.githubusercontent.com',
  'registry.npmjs.org',
  'pypi.org',
  'files.pythonhosted.org',
];
const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

/** `host`, `host:port` or `*.domain[:port]`; without a port, 443 and 80 are allowed. */
const hostPattern = str.regex(/^(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$/, 'expected host, host:port or *.domain');

const templateSchema = z
  .object({
    system_prompt_file: str.optional(),
    allowed_tools: z.array(str).optional(),
    timeout_minutes: z.number().positive().optional(),
    /** Replaces agent.network_allow for this agent type (e.g. a narrower list for outside triggers). */
    network_allow: z.array(hostPattern).optional(),
  })
  .strict();

const stepSchema = z
  .object({
    agent: str,
    input: str.optional(),
    output: str.optional(),
    condition: str.optional(),
    loop_to: str.optional(),
    prompt_template: str.optional(),
  })
  .strict();

export const workflowDefSchema = z
  .object({
    max_iterations: posInt.default(3),
    steps: z.array(stepSchema).min(1),
  })
  .strict();

const repoSchema = z
  .object({
    url: str.min(1),
    default_agent: z.enum(AGENT_TYPES).optional(),
    default_branch: str.optional(),
    /** Hosts agents on this repository may reach besides the agent type's list (its package registries). */
    network_allow: z.array(hostPattern).default([]),
  })
  .strict();

export const configSchema = z
  .object({
    server: z
      .object({
        host: str.optional(),
        port: z.number().int().min(0).max(65535).default(8100),
        body_limit_bytes: posInt.default(1_048_576),
      })
      .strict()
      .prefault({}),
    public_url: str.default(''),
    /** all: one process does everything; api: HTTP, SSE, webhooks, deliveries and pollers; worker: runs agents (needs PostgreSQL). */
    role: z.enum(['all', 'api', 'worker']).default('all'),
    database: z
      .object({
        /** Empty: SQLite at <data_dir>/factory.db. Or sqlite:<file>, or postgres://user@host:port/db (shared by every process). */
        url: str
          .default('')
          .refine(
            (v) => v === '' || /^(sqlite:.+|postgres(ql)?:\/\/.+)$/i.test(v),
            'expected sqlite:<file> or postgres://user@host:port/database',
          ),
        /** PostgreSQL only: how long one statement may run before the server cancels it. */
        statement_timeout_seconds: posInt.default(10),
      })
      .strict()
      .prefault({}),
    data_dir: str.default('./data'),
    repos_dir: str.optional(),
    worktrees_dir: str.optional(),
    max_concurrent_agents: posInt.max(64).default(3),
    agent_timeout_minutes: z.number().positive().default(60),
    agent_activity_timeout_minutes: z.number().positive().default(15),
    agent: z
      .object({
        command: str.min(1).default('claude'),
        extra_args: z.array(str).default([]),
        kill_grace_seconds: z.number().positive().default(10),
        /**
         * Scheduling priority of agent processes (nice, 0–19; what they start inherits it): agents that
         * keep every core busy must not starve the API, the watchdog and the log writer.
         */
        nice: z.number().int().min(0).max(19).default(10),
        /** Run agents in a bubblewrap sandbox: auto = where the kernel allows it (warned about when not). */
        sandbox: z.enum(['auto', 'on', 'off']).default('auto'),
        /** Hosts a sandboxed agent may reach through Factory's egress proxy. */
        network_allow: z.array(hostPattern).default(DEFAULT_NETWORK_ALLOW),
        /** Extra paths a sandboxed agent may write (besides its worktree and its CLI's state directory). */
        sandbox_writable: z.array(str).default([]),
        /** Extra paths hidden from a sandboxed agent (besides Factory's data, config, .env and home secrets). */
        sandbox_hidden: z.array(str).default([]),
        env: z.record(str, str).default({}),
        log_tail_lines: posInt.default(200),
        /** The same tool call or output this many times in a row stops the agent as stuck (0 = off). */
        stall_repeat_threshold: nonNegInt.default(20),
        /** Queue pause after a usage limit whose reset time the agent did not report. */
        usage_limit_backoff_minutes: z.number().positive().default(30),
        /** A task that meets a usage limit on more than this many runs in a row fails instead of pausing again. */
        max_usage_limit_pauses: posInt.default(5),
        /** Every this many seconds a running standalone task's work is pushed as a WIP checkpoint (0 = off), so another worker can take over. */
        checkpoint_seconds: nonNegInt.default(300),
        /** Claude's session store (CLAUDE_CONFIG_DIR) is shared by every worker host, so a task taken over elsewhere resumes its session. */
        shared_session_store: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    pr_loop: z
      .object({
        enabled: z.boolean().default(true),
        /** Fallback polling of open PRs for missed webhooks. */
        poll_seconds: posInt.default(120),
        max_ci_fix_attempts: nonNegInt.default(3),
        /** A review or PR comment that mentions this asks the agent for changes. */
        trigger: str.min(2).default('@factory'),
        /** GitHub logins whose reviews/comments the agent acts on; empty = nobody (comments are ignored and logged). */
        allowed_users: z.array(str).default([]),
        delete_branch_on_merge: z.boolean().default(true),
        /** Characters of failing-check output put into the prompt. */
        max_failure_chars: posInt.default(6000),
      })
      .strict()
      .prefault({}),
    retention: z
      .object({
        /** Log lines of tasks that ended (done, failed, cancelled, in_review) longer ago than this are deleted (0 = keep forever). */
        task_logs_days: nonNegInt.default(30),
      })
      .strict()
      .prefault({}),
    budgets: z
      .object({
        /** Dollars one task may spend over all its runs (0 = no limit). */
        task_usd: z.number().nonnegative().default(0),
        /** Dollars all agents may spend per UTC day; the queue stops starting work when spent (0 = no limit). */
        daily_usd: z.number().nonnegative().default(0),
      })
      .strict()
      .prefault({}),
    queue: z
      .object({
        max_attempts: posInt.default(3),
        lease_seconds: posInt.default(60),
        poll_interval_ms: posInt.default(1000),
        /** Agents running on all worker hosts together (0 = only the per-host max_concurrent_agents applies). */
        global_max_concurrent: nonNegInt.default(0),
        /** A task whose git host cannot be reached waits and retries this long before it fails. */
        unreachable_retry_minutes: posInt.default(60),
      })
      .strict()
      .prefault({}),
    shutdown: z
      .object({
        grace_seconds: z.number().nonnegative().default(20),
      })
      .strict()
      .prefault({}),
    git: z
      .object({
        author_name: str.default('Factory Agent'),
        author_email: str.default('factory@localhost'),
        branch_prefix: str.regex(/^[A-Za-z0-9._/-]+$/).default('factory/'),
      })
      .strict()
      .prefault({}),
    github: z
      .object({
        api_url: str.url().default('https://api.github.com'),
        /** One GitHub API attempt gives up after this long (then it is retried when safe). */
        request_timeout_seconds: z.number().positive().default(30),
        clone_base: str.default('https://github.com'),
      })
      .strict()
      .prefault({}),
    default_org: str.default(''),
    repos: z.record(str, repoSchema).default({}),
    agent_templates: z.partialRecord(z.enum(AGENT_TYPES), templateSchema).default({}),
    message_board: z
      .object({
        enabled: z.boolean().default(true),
        telegram_forward: z.boolean().default(true),
        telegram_chat_id: z.union([str, z.number()]).transform(String).default(''),
        forward_types: z.array(z.enum(['info', 'question', 'handoff', 'status', 'error'])).default(['error', 'question', 'handoff']),
        max_message_chars: posInt.default(20_000),
      })
      .strict()
      .prefault({}),
    workflows: z.record(str, workflowDefSchema).default({}),
    telegram: z
      .object({
        bot_token: str.default(''),
        chat_id: z.union([str, z.number()]).transform(String).default(''),
        api_root: str.url().default('https://api.telegram.org'),
        poll_replies: z.boolean().default(true),
        allowed_user_ids: z.array(z.number().int()).default([]),
      })
      .strict()
      .prefault({}),
    plane: z
      .object({
        base_url: str.default(''),
        api_key: str.default(''),
        /** Plane members (id, email or display name) whose issues and comments may start or steer agents; empty = nobody. */
        allowed_members: z.array(str).default([]),
        workspace_slug: str.default(''),
        project_id: str.default(''),
        default_repo: str.default(''),
        states: z.record(str, str).default({}),
        poll_interval_seconds: posInt.default(30),
        progress_every: nonNegInt.default(5),
      })
      .strict()
      .prefault({}),
    clarification: z
      .object({
        reminder_minutes: z.number().positive().default(60),
        timeout_minutes: z
          .number()
          .positive()
          .default(24 * 60),
      })
      .strict()
      .prefault({}),
    memory: z
      .object({
        enabled: z.boolean().default(true),
        url: str.default(''),
        namespace: str.default('factory'),
        database: str.default('memory'),
        embedding_model: str.default('text-embedding-3-small'),
        openai_base_url: str.default(''),
        max_prompt_chars: posInt.default(4000),
      })
      .strict()
      .prefault({}),
    docker: z
      .object({
        domain: str.default('preview.example.com'),
        network: str.default('traefik'),
        entrypoint: str.default('websecure'),
        cert_resolver: str.default(''),
        command: str.default('docker'),
        health_timeout_seconds: posInt.default(120),
        preview_max_age_hours: posInt.default(24 * 7),
        env: z.record(str, str).default({}),
        preview_poll_seconds: posInt.default(300),
      })
      .strict()
      .prefault({}),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict();

export type FileConfig = z.infer<typeof configSchema>;
export type WorkflowDef = z.infer<typeof workflowDefSchema>;

export interface Secrets {
  anthropicApiKey: string;
  githubToken: string;
  authToken: string;
  planeApiKey: string;
  planeWebhookSecret: string;
  githubWebhookSecret: string;
  telegramBotToken: string;
  surrealUrl: string;
  surrealUser: string;
  surrealPass: string;
  openaiApiKey: string;
  /** The password inside database.url, if any (scrubbed from output like every secret). */
  databasePassword: string;
}

/** The built-in coder → reviewer → revision loop; config.yml may redefine it. */
export const BUILTIN_CODE_REVIEW: WorkflowDef = {
  max_iterations: 3,
  steps: [
    { agent: 'coder', output: 'initial_code' },
    { agent: 'reviewer', input: 'initial_code', output: 'review' },
    { agent: 'coder_revision', input: 'review', output: 'revision', condition: 'has_issues', loop_to: 'review' },
  ],
};

export interface ResolvedTemplate {
  system_prompt_file: string;
  allowed_tools: string[];
  timeout_minutes: number;
  network_allow: string[];
}

export type Config = Omit<FileConfig, 'server' | 'agent_templates' | 'repos_dir' | 'worktrees_dir' | 'database'> & {
  /** url: a SQLite file path or a postgres:// URL, resolved; describe: the same without a password. */
  database: { url: string; dialect: 'sqlite' | 'postgres'; describe: string; statement_timeout_seconds: number };
  server: { host: string; port: number; body_limit_bytes: number; hostForced: boolean };
  repos_dir: string;
  worktrees_dir: string;
  agent_templates: Record<AgentType, ResolvedTemplate>;
  secrets: Secrets;
  configPath: string | null;
  rootDir: string;
  devLogs: boolean;
  /** The part of the process environment that git and agents inherit (no secrets). */
  baseEnv: Record<string, string>;
};
