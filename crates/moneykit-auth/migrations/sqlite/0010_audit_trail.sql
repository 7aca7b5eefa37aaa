-- The audit trail: one row per administrative change or refused attempt, appended and
-- never changed (the trigger refuses every UPDATE); rows leave only by retention, oldest
-- first. at_ms is Unix milliseconds; changes is a JSON object of the changed fields,
-- {"field": {"before": …, "after": …}}, never holding a secret, a key or a token.
-- Not covered by the revision counter: no running server serves from it.
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    at_ms       INTEGER NOT NULL,
    actor       TEXT NOT NULL,           -- 'cli:user@host', 'admin_token', 'client:live_…', 'anonymous'
    via         TEXT NOT NULL,           -- cli, admin_api, demo, server
    source      TEXT,                    -- the admin API caller's address
    action      TEXT NOT NULL,           -- e.g. client.create, client.secret.revoke
    target      TEXT,                    -- the id of what it acted on
    changes     TEXT,
    request_id  TEXT,
    outcome     TEXT NOT NULL,           -- ok, refused, failed
    detail      TEXT                     -- why it was refused or failed
);
CREATE INDEX audit_events_at ON audit_events (at_ms);
CREATE INDEX audit_events_target ON audit_events (target);

CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
