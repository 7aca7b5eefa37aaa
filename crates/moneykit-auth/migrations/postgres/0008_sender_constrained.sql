-- Sender-constrained tokens. require_dpop (0 or 1): the client's token requests must carry
-- a DPoP proof. Clients that authenticate with a certificate ('tls_client_auth',
-- 'self_signed_tls_client_auth' in auth_method) keep what identifies them in tls_identity:
-- '<RFC 8705 metadata name> <value>' (e.g. 'tls_client_auth_subject_dn CN=billing,O=Acme')
-- or the space-separated x5t#S256 thumbprints of their self-signed certificates. Their
-- secret_hash, like a private_key_jwt client's, is the hash of no secret anyone has.
ALTER TABLE clients ADD COLUMN require_dpop BIGINT NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN tls_identity TEXT;
