-- `keys revoke`: a withdrawn signing key. It leaves the JWKS at once and nothing it signed
-- verifies any more; the row stays, so the key is never published again and the
-- withdrawal shows in `keys list`. NULL: not revoked.
ALTER TABLE signing_keys ADD COLUMN revoked_at BIGINT;
