-- How a finished workflow ended: approved | max_iterations | completed (no review step) | ''.
ALTER TABLE workflows ADD COLUMN result TEXT NOT NULL DEFAULT '';
