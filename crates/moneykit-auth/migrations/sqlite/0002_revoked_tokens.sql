-- Revoked access tokens (RFC 7009). Rows are forgotten once the token has expired.
-- Not covered by the revision triggers: servers pick revocations up incrementally by seq,
-- without rebuilding their whole in-memory state.
CREATE TABLE revoked_tokens (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    jti         TEXT NOT NULL UNIQUE,
    client_id   TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
