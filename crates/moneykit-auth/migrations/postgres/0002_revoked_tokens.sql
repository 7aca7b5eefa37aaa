-- Revoked access tokens (RFC 7009). Rows are forgotten once the token has expired.
-- Not covered by the revision counter: servers pick revocations up incrementally by seq,
-- woken by NOTIFY, without rebuilding their whole in-memory state.
CREATE TABLE revoked_tokens (
    seq         BIGSERIAL PRIMARY KEY,
    jti         TEXT NOT NULL UNIQUE,
    client_id   TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);

CREATE FUNCTION moneykit_auth_token_revoked() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('moneykit_auth_changes', 'revocation');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER tokens_revoked AFTER INSERT ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION moneykit_auth_token_revoked();
