-- Every Factory process (role all, api or worker) registers here and renews its heartbeat;
-- GET /api/workers reads it. `running` is a JSON array of the task ids the process runs.
CREATE TABLE workers (
  id              TEXT PRIMARY KEY,
  host            TEXT NOT NULL,
  pid             INTEGER NOT NULL,
  role            TEXT NOT NULL,
  max_concurrent  INTEGER NOT NULL,
  running         TEXT NOT NULL DEFAULT '[]',
  started_at      TEXT NOT NULL,
  heartbeat_at    TEXT NOT NULL,
  stopped_at      TEXT
);
CREATE INDEX workers_heartbeat ON workers(heartbeat_at);

-- The host an agent run happened on: a pid means something only there, and a Claude session
-- can be resumed only where its session store is.
ALTER TABLE task_runs ADD COLUMN host TEXT NOT NULL DEFAULT '';

-- The machine whose Docker runs an environment: with workers on several hosts, each host's Factory
-- polls, cleans up and tears down only its own ('' = before this column, treated as local).
ALTER TABLE environments ADD COLUMN machine TEXT NOT NULL DEFAULT '';
