-- Factory schema, version 1. Timestamps are ISO-8601 UTC strings with milliseconds and Z, stored
-- as TEXT on both engines. One source for SQLite and PostgreSQL (see listMigrations in
-- ../connection.ts): {{id}} is an INTEGER PRIMARY KEY AUTOINCREMENT on SQLite and a BIGINT identity
-- (BY DEFAULT, so a migration tool can insert explicit ids and then reset the sequence) on
-- PostgreSQL; {{bigint}} (ids referenced, epoch-ms values, durations, token counts) is INTEGER or
-- BIGINT; {{real}} is REAL or DOUBLE PRECISION. 0/1 flags are INTEGER on both. Lines between
-- `-- @sqlite` (or `-- @postgres`) and `-- @end` are for that engine only.

CREATE TABLE workflows (
  id              {{id}},
  name            TEXT NOT NULL,
  title           TEXT NOT NULL,
  description     TEXT NOT NULL DEFAULT '',
  repo            TEXT NOT NULL DEFAULT '',
  status          TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending','running','completed','failed','cancelled')),
  current_step    INTEGER NOT NULL DEFAULT 0,
  iteration       INTEGER NOT NULL DEFAULT 0,
  max_iterations  INTEGER NOT NULL DEFAULT 3,
  plane_issue_id  TEXT NOT NULL DEFAULT '',
  error           TEXT NOT NULL DEFAULT '',
  definition      TEXT NOT NULL,               -- JSON snapshot of the definition it runs
  outputs         TEXT NOT NULL DEFAULT '{}',  -- JSON map output key -> text
  branch_name     TEXT NOT NULL DEFAULT '',
  pr_url          TEXT NOT NULL DEFAULT '',
  created_at      TEXT NOT NULL,
  started_at      TEXT,
  completed_at    TEXT,
  updated_at      TEXT NOT NULL
);
CREATE INDEX workflows_status ON workflows(status);

CREATE TABLE tasks (
  id                    {{id}},
  title                 TEXT NOT NULL,
  description           TEXT NOT NULL DEFAULT '',
  repo                  TEXT NOT NULL DEFAULT '',
  agent_type            TEXT NOT NULL DEFAULT 'coder',
  status                TEXT NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued','in_progress','waiting_for_input','in_review','done','failed','cancelled')),
  plane_issue_id        TEXT NOT NULL DEFAULT '',
  plane_sequence_id     INTEGER,
  branch_name           TEXT NOT NULL DEFAULT '',
  base_branch           TEXT NOT NULL DEFAULT '',
  worktree_path         TEXT NOT NULL DEFAULT '',
  pr_url                TEXT NOT NULL DEFAULT '',
  pr_number             INTEGER,
  preview_url           TEXT NOT NULL DEFAULT '',
  error                 TEXT NOT NULL DEFAULT '',
  result_summary        TEXT NOT NULL DEFAULT '',
  clarification_context TEXT NOT NULL DEFAULT '',
  workflow_id           {{bigint}} REFERENCES workflows(id) ON DELETE SET NULL,
  workflow_step         INTEGER,
  parent_task_id        {{bigint}} REFERENCES tasks(id) ON DELETE SET NULL,
  session_id            TEXT NOT NULL DEFAULT '',
  cost_usd              {{real}} NOT NULL DEFAULT 0,
  input_tokens          {{bigint}} NOT NULL DEFAULT 0,
  output_tokens         {{bigint}} NOT NULL DEFAULT 0,
  cache_read_tokens     {{bigint}} NOT NULL DEFAULT 0,
  cache_creation_tokens {{bigint}} NOT NULL DEFAULT 0,
  attempts              INTEGER NOT NULL DEFAULT 0,
  run_requested_at      TEXT,            -- set when the task should run; the queue orders by it
  not_before            TEXT,            -- the queue waits until then (backoff, usage limits)
  lease_owner           TEXT,
  lease_expires_at      {{bigint}},         -- epoch ms
  cancel_requested      INTEGER NOT NULL DEFAULT 0,
  keep_worktree         INTEGER NOT NULL DEFAULT 0,
  created_at            TEXT NOT NULL,
  started_at            TEXT,
  completed_at          TEXT,
  updated_at            TEXT NOT NULL
);
CREATE INDEX tasks_status ON tasks(status);
CREATE INDEX tasks_queue ON tasks(status, run_requested_at, id) WHERE run_requested_at IS NOT NULL;
CREATE INDEX tasks_plane_issue ON tasks(plane_issue_id) WHERE plane_issue_id <> '';
CREATE INDEX tasks_workflow ON tasks(workflow_id) WHERE workflow_id IS NOT NULL;
CREATE INDEX tasks_created ON tasks(created_at);

CREATE TABLE task_logs (
  id       {{id}},
  task_id  {{bigint}} NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  ts       TEXT NOT NULL,
  stream   TEXT NOT NULL CHECK (stream IN ('stdout','stderr','system')),
  line     TEXT NOT NULL
);
CREATE INDEX task_logs_task ON task_logs(task_id, id);

-- One row per agent run (attempt, resume, revision): outcome, cost and usage.
CREATE TABLE task_runs (
  id                    {{id}},
  task_id               {{bigint}} NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  attempt               INTEGER NOT NULL,
  kind                  TEXT NOT NULL DEFAULT 'run',
  started_at            TEXT NOT NULL,
  ended_at              TEXT,
  outcome               TEXT NOT NULL DEFAULT 'running',
  error                 TEXT NOT NULL DEFAULT '',
  session_id            TEXT NOT NULL DEFAULT '',
  pid                   INTEGER,
  cost_usd              {{real}} NOT NULL DEFAULT 0,
  input_tokens          {{bigint}} NOT NULL DEFAULT 0,
  output_tokens         {{bigint}} NOT NULL DEFAULT 0,
  cache_read_tokens     {{bigint}} NOT NULL DEFAULT 0,
  cache_creation_tokens {{bigint}} NOT NULL DEFAULT 0,
  duration_ms           {{bigint}} NOT NULL DEFAULT 0,
  num_turns             INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX task_runs_task ON task_runs(task_id, id);
CREATE INDEX task_runs_started ON task_runs(started_at);

CREATE TABLE workflow_steps (
  id              {{id}},
  workflow_id     {{bigint}} NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
  step_index      INTEGER NOT NULL,
  agent_type      TEXT NOT NULL,
  task_id         {{bigint}} REFERENCES tasks(id) ON DELETE SET NULL,
  status          TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending','running','completed','skipped','failed')),
  input_key       TEXT NOT NULL DEFAULT '',
  output_key      TEXT NOT NULL DEFAULT '',
  condition       TEXT NOT NULL DEFAULT '',
  loop_to         TEXT NOT NULL DEFAULT '',
  prompt_template TEXT NOT NULL DEFAULT '',
  output_data     TEXT NOT NULL DEFAULT '',
  iteration       INTEGER NOT NULL DEFAULT 0,
  started_at      TEXT,
  completed_at    TEXT,
  UNIQUE (workflow_id, step_index)
);

CREATE TABLE handoffs (
  id            {{id}},
  from_task_id  {{bigint}} NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  to_task_id    {{bigint}} REFERENCES tasks(id) ON DELETE SET NULL,
  workflow_id   {{bigint}} REFERENCES workflows(id) ON DELETE SET NULL,
  output_type   TEXT NOT NULL DEFAULT 'general',
  content       TEXT NOT NULL DEFAULT '',
  summary       TEXT NOT NULL DEFAULT '',
  created_at    TEXT NOT NULL
);
CREATE INDEX handoffs_from ON handoffs(from_task_id);
CREATE INDEX handoffs_to ON handoffs(to_task_id);
CREATE INDEX handoffs_workflow ON handoffs(workflow_id);

CREATE TABLE messages (
  id            {{id}},
  sender        TEXT NOT NULL,
  recipient     TEXT,
  task_id       {{bigint}} REFERENCES tasks(id) ON DELETE SET NULL,
  workflow_id   {{bigint}} REFERENCES workflows(id) ON DELETE SET NULL,
  message       TEXT NOT NULL,
  message_type  TEXT NOT NULL DEFAULT 'info'
                CHECK (message_type IN ('info','question','handoff','status','error')),
  reply_to      {{bigint}} REFERENCES messages(id) ON DELETE SET NULL,
  created_at    TEXT NOT NULL
);
CREATE INDEX messages_task ON messages(task_id, id);
CREATE INDEX messages_workflow ON messages(workflow_id, id);
CREATE INDEX messages_reply ON messages(reply_to);
-- @sqlite

CREATE VIRTUAL TABLE messages_fts USING fts5(message, sender, recipient, content='messages', content_rowid='id');
CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
  INSERT INTO messages_fts(rowid, message, sender, recipient) VALUES (new.id, new.message, new.sender, coalesce(new.recipient, ''));
END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
  INSERT INTO messages_fts(messages_fts, rowid, message, sender, recipient) VALUES ('delete', old.id, old.message, old.sender, coalesce(old.recipient, ''));
END;
-- @end
-- @postgres
CREATE INDEX messages_search ON messages USING GIN (to_tsvector('simple', message || ' ' || sender || ' ' || coalesce(recipient, '')));
-- @end

-- Every event the live stream carries, so a reconnecting client can replay by id.
CREATE TABLE events (
  id          {{id}},
  kind        TEXT NOT NULL,
  task_id     {{bigint}},
  payload     TEXT NOT NULL,
  created_at  TEXT NOT NULL
);

-- Durable deliveries to outside services (Telegram, Plane), retried with backoff, in order per key.
CREATE TABLE outbox (
  id               {{id}},
  channel          TEXT NOT NULL,
  order_key        TEXT NOT NULL DEFAULT '',
  dedupe_key       TEXT UNIQUE,
  payload          TEXT NOT NULL,
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  {{bigint}} NOT NULL,          -- epoch ms
  last_error       TEXT NOT NULL DEFAULT '',
  result           TEXT NOT NULL DEFAULT '',
  created_at       TEXT NOT NULL,
  delivered_at     TEXT
);
CREATE INDEX outbox_pending ON outbox(channel, delivered_at, next_attempt_at);

-- Small key/value state (queue pause, budget notices, poll cursors).
CREATE TABLE kv (
  key         TEXT PRIMARY KEY,
  value       TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);
