-- Secretless clients. A client authenticates with a secret ('client_secret': secret_hash
-- holds its SHA-256) or with a JWT signed by one of its keys ('private_key_jwt':
-- secret_hash is empty, the public keys are in jwks or at jwks_uri).
ALTER TABLE clients ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'client_secret';
ALTER TABLE clients ADD COLUMN jwks TEXT;
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;

-- Workload identity federation: a client trusts tokens of an external issuer for one
-- subject. Keys from jwks, from jwks_uri, or (both NULL) through the issuer's discovery
-- document.
CREATE TABLE trust_rules (
    id          TEXT PRIMARY KEY NOT NULL,
    client_id   TEXT NOT NULL REFERENCES clients (id),
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    audience    TEXT,                    -- NULL: this server's issuer
    jwks        TEXT,
    jwks_uri    TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX trust_rules_client_id ON trust_rules (client_id);

CREATE TRIGGER trust_rules_changed AFTER INSERT OR UPDATE OR DELETE ON trust_rules
    FOR EACH ROW EXECUTE FUNCTION moneykit_auth_state_changed();

-- Client assertion ids already used, until they expire: what makes a replayed assertion
-- fail on every replica sharing the database. One INSERT … ON CONFLICT DO NOTHING per
-- private_key_jwt request; pruned by the background refresh.
CREATE TABLE used_assertions (
    id          TEXT PRIMARY KEY NOT NULL,   -- first 128 bits of SHA-256 (hex) of the client id and the jti
    expires_at  BIGINT NOT NULL
);
CREATE INDEX used_assertions_expires_at ON used_assertions (expires_at);
