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
    hash             BYTEA NOT NULL,          -- SHA-256 of the secret; the secret is never stored
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT,
    last_used_at     BIGINT,
    expiry_notified  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX client_secrets_client_id ON client_secrets (client_id);

INSERT INTO client_secrets (id, client_id, hash, created_at)
    SELECT 'sec_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 24), id, secret_hash, created_at
    FROM clients WHERE auth_method = 'client_secret';

CREATE TRIGGER client_secrets_changed AFTER INSERT OR DELETE OR UPDATE OF hash, expires_at
    ON client_secrets FOR EACH ROW EXECUTE FUNCTION moneykit_auth_state_changed();
