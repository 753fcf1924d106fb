-- Following pull requests after they are opened: CI results, reviews, merge state.
ALTER TABLE tasks ADD COLUMN pr_state TEXT NOT NULL DEFAULT '';          -- open | merged | closed
ALTER TABLE tasks ADD COLUMN ci_conclusion TEXT NOT NULL DEFAULT '';     -- pending | success | failure | none
ALTER TABLE tasks ADD COLUMN revision_context TEXT NOT NULL DEFAULT '';  -- JSON: why the next run revises the PR

CREATE TABLE pr_watch (
  task_id                 {{bigint}} PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
  owner                   TEXT NOT NULL,
  repo                    TEXT NOT NULL,
  pr_number               INTEGER NOT NULL,
  state                   TEXT NOT NULL DEFAULT 'open',
  head_sha                TEXT NOT NULL DEFAULT '',
  ci_handled_sha          TEXT NOT NULL DEFAULT '',
  ci_fix_attempts         INTEGER NOT NULL DEFAULT 0,
  last_failure_signature  TEXT NOT NULL DEFAULT '',
  gave_up                 TEXT NOT NULL DEFAULT '',
  updated_at              TEXT NOT NULL
);
CREATE UNIQUE INDEX pr_watch_pr ON pr_watch(owner, repo, pr_number);
