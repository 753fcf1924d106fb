-- The task's latest output line (stdout or system, at most 500 characters), kept by the log writer
-- in the same transaction as the lines, so the task list is one query on the tasks table. NULL: the
-- task has no output (yet, or its log was purged).
ALTER TABLE tasks ADD COLUMN last_output TEXT;
UPDATE tasks SET last_output = (
  SELECT substr(l.line, 1, 500) FROM task_logs l WHERE l.task_id = tasks.id AND l.stream <> 'stderr' ORDER BY l.id DESC LIMIT 1
);
