-- Several secrets per client, so a secret can be rotated without an outage: the new one
-- works at once, the old one until its expires_at. Times are Unix seconds; a NULL
-- expires_at never expires. last_used_at is flushed from memory in batches and
-- expiry_notified (0 or 1) marks a secret whose coming expiry was announced; neither
-- bumps the revision, since no running server needs them.
-- clients.secret_hash now holds the newest secret's hash (what a replica still running
-- the previous release checks during a rolling upgrade).
CREATE TABLE client_secrets (
    id               TEXT PRIMARY KEY NOT NULL,
    client_id        TEXT NOT NULL REFERENCES clients (id),
    hash             BLOB NOT NULL,           -- SHA-256 of the secret; the secret is never stored
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER,
    last_used_at     INTEGER,
    expiry_notified  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX client_secrets_client_id ON client_secrets (client_id);

INSERT INTO client_secrets (id, client_id, hash, created_at)
    SELECT 'sec_' || lower(hex(randomblob(12))), id, secret_hash, created_at
    FROM clients WHERE auth_method = 'client_secret';

CREATE TRIGGER client_secrets_changed_insert AFTER INSERT ON client_secrets BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER client_secrets_changed_update AFTER UPDATE OF hash, expires_at ON client_secrets BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER client_secrets_changed_delete AFTER DELETE ON client_secrets BEGIN UPDATE revision SET value = value + 1; END;
