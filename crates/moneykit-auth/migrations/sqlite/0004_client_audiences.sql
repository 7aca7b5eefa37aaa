-- Audiences a client may ask for (RFC 8707 resource indicators), space-separated absolute
-- URIs; the first is the client's default. Empty: the server's default audience.
ALTER TABLE clients ADD COLUMN audiences TEXT NOT NULL DEFAULT '';
