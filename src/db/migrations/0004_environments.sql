-- Docker test and preview environments started for agents (factory-env). One row per `up` of a
-- compose project; a project has at most one live row (removed_at IS NULL).
CREATE TABLE environments (
  id             {{id}},
  task_id        {{bigint}} NOT NULL,            -- no foreign key: the row must outlive the task to clean up
  repo           TEXT NOT NULL DEFAULT '',    -- owner/name, for the PR lookups of previews
  project        TEXT NOT NULL,               -- docker compose project: factory-task-<id> | factory-pr-<n> | factory-preview-task-<id>
  env_type       TEXT NOT NULL CHECK (env_type IN ('test','preview')),
  service        TEXT NOT NULL,
  port           INTEGER NOT NULL,
  host           TEXT NOT NULL DEFAULT '',
  url            TEXT NOT NULL DEFAULT '',
  status         TEXT NOT NULL DEFAULT 'starting'
                 CHECK (status IN ('starting','running','failed','removed')),
  health         TEXT NOT NULL DEFAULT '',    -- healthy | starting | unhealthy | http | ...
  container_id   TEXT NOT NULL DEFAULT '',
  pr_number      INTEGER,
  compose_file   TEXT NOT NULL,               -- relative to the worktree
  override_file  TEXT NOT NULL,               -- absolute, under data_dir/environments
  worktree       TEXT NOT NULL,
  created_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL,
  removed_at     TEXT,
  last_error     TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX environments_live_project ON environments(project) WHERE removed_at IS NULL;
CREATE INDEX environments_task ON environments(task_id);
CREATE INDEX environments_live ON environments(removed_at, env_type);
