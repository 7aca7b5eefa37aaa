-- Signed webhook delivery (PRODUCT.md §7): an app's endpoint, and the durable outbox.
-- Times here are Unix milliseconds: retries back off from a fraction of a second.

ALTER TABLE apps ADD COLUMN webhook_url TEXT;  -- NULL: no webhooks

CREATE TABLE webhook_events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,     -- evt_…
    app_id           TEXT NOT NULL REFERENCES apps (id),
    event            TEXT NOT NULL,            -- the payload's webhook_event
    body             BLOB NOT NULL,            -- the exact bytes every attempt sends
    delivery_token   TEXT NOT NULL,            -- MoneyKit-Delivery-Token, same on every attempt
    status           TEXT NOT NULL,            -- pending | delivered | failed
    attempts         INTEGER NOT NULL,         -- attempts started so far
    next_attempt_ms  INTEGER NOT NULL,         -- when a pending event is next due
    leased_until_ms  INTEGER,                  -- a worker is delivering it until then
    retry_until_ms   INTEGER NOT NULL,         -- past this, a failed attempt fails the event
    last_status      INTEGER,                  -- HTTP status of the last attempt
    last_error       TEXT,                     -- or why it got none
    created_ms       INTEGER NOT NULL,
    finished_ms      INTEGER                   -- delivered or failed at
);
CREATE INDEX webhook_events_due ON webhook_events (status, next_attempt_ms);
CREATE INDEX webhook_events_app ON webhook_events (app_id, seq);
