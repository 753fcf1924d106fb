-- Webhook deliveries and comments already handled, so the webhook and the poller never act twice.
CREATE TABLE external_seen (
  key         TEXT PRIMARY KEY,      -- e.g. plane:comment:<id>, plane:delivery:<issue>:<updated_at>:<field>
  own         INTEGER NOT NULL DEFAULT 0,   -- 1 = something Factory itself created (our own comments)
  created_at  TEXT NOT NULL
);
