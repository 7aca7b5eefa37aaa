-- Apps, clients and signing keys. Times are Unix seconds (UTC), as on SQLite, so both
-- backends store and compare the same values.

CREATE TABLE apps (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE clients (
    id              TEXT PRIMARY KEY NOT NULL,
    app_id          TEXT NOT NULL REFERENCES apps (id),
    name            TEXT NOT NULL,
    scopes          TEXT NOT NULL,           -- space-separated
    token_ttl_secs  BIGINT,                  -- NULL: the server default
    secret_hash     BYTEA NOT NULL,          -- SHA-256 of the secret; the secret is never stored
    created_at      BIGINT NOT NULL,
    disabled_at     BIGINT                   -- NULL: enabled; future: scheduled
);
CREATE INDEX clients_app_id ON clients (app_id);

CREATE TABLE signing_keys (
    seq                 BIGSERIAL PRIMARY KEY,
    kid                 TEXT NOT NULL UNIQUE,
    public_key          BYTEA NOT NULL,      -- uncompressed SEC1 P-256 point
    sealed_private_key  BYTEA NOT NULL,      -- PKCS#8, AES-256-GCM under the master key
    created_at          BIGINT NOT NULL,
    activates_at        BIGINT NOT NULL
);

-- Bumped by every row written below (row triggers: a statement that changes nothing
-- bumps nothing), so running servers notice changes with one cheap read;
-- the same triggers NOTIFY listeners so replicas hear of a change at once.
CREATE TABLE revision (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    value  BIGINT NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE FUNCTION moneykit_auth_state_changed() RETURNS trigger AS $$
BEGIN
    UPDATE revision SET value = value + 1 WHERE id = 1;
    PERFORM pg_notify('moneykit_auth_changes', 'state');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER apps_changed AFTER INSERT OR UPDATE OR DELETE ON apps
    FOR EACH ROW EXECUTE FUNCTION moneykit_auth_state_changed();
CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH ROW EXECUTE FUNCTION moneykit_auth_state_changed();
CREATE TRIGGER keys_changed AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION moneykit_auth_state_changed();
