-- Apps, clients and signing keys. Times are Unix seconds (UTC).

CREATE TABLE apps (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE clients (
    id              TEXT PRIMARY KEY NOT NULL,
    app_id          TEXT NOT NULL REFERENCES apps (id),
    name            TEXT NOT NULL,
    scopes          TEXT NOT NULL,           -- space-separated
    token_ttl_secs  INTEGER,                 -- NULL: the server default
    secret_hash     BLOB NOT NULL,           -- SHA-256 of the secret; the secret is never stored
    created_at      INTEGER NOT NULL,
    disabled_at     INTEGER                  -- NULL: enabled; future: scheduled
);
CREATE INDEX clients_app_id ON clients (app_id);

CREATE TABLE signing_keys (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    kid                 TEXT NOT NULL UNIQUE,
    public_key          BLOB NOT NULL,       -- uncompressed SEC1 P-256 point
    sealed_private_key  BLOB NOT NULL,       -- PKCS#8, AES-256-GCM under the master key
    created_at          INTEGER NOT NULL,
    activates_at        INTEGER NOT NULL
);

-- Bumped by every write below, so running servers notice changes with one cheap read.
CREATE TABLE revision (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    value  INTEGER NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);

CREATE TRIGGER apps_changed_insert AFTER INSERT ON apps BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER apps_changed_update AFTER UPDATE ON apps BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER apps_changed_delete AFTER DELETE ON apps BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER clients_changed_insert AFTER INSERT ON clients BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER clients_changed_update AFTER UPDATE ON clients BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER clients_changed_delete AFTER DELETE ON clients BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER keys_changed_insert AFTER INSERT ON signing_keys BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER keys_changed_update AFTER UPDATE ON signing_keys BEGIN UPDATE revision SET value = value + 1; END;
CREATE TRIGGER keys_changed_delete AFTER DELETE ON signing_keys BEGIN UPDATE revision SET value = value + 1; END;
