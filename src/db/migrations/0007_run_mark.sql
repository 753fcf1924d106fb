-- The mark every process of an agent run carries in its environment (FACTORY_AGENT_RUN): after a
-- hard exit of Factory, the next start finds the run's leftovers by it, whatever their pid or session.
ALTER TABLE task_runs ADD COLUMN proc_mark TEXT NOT NULL DEFAULT '';
