-- A journal of what each revision changed: an app, a client (its row, its secrets or its
-- trust rules) or the signing keys. Running servers catch up by reading only those rows
-- instead of every client (with 100 000 clients a full reload took seconds on every
-- replica). The triggers that bump the revision write it, in the same transaction, so no
-- write path can forget it. Every server's background refresh prunes entries older than
-- an hour and moves journal_from past them; a server whose snapshot is older than
-- journal_from reloads everything. at is whole Unix seconds (truncated).
CREATE TABLE state_changes (
    revision  BIGINT NOT NULL,
    kind      TEXT NOT NULL,           -- 'app', 'client' or 'key'
    id        TEXT NOT NULL,           -- the app's or client's id; '' for keys
    at        BIGINT NOT NULL
);
CREATE INDEX state_changes_revision ON state_changes (revision);
CREATE INDEX state_changes_at ON state_changes (at);

ALTER TABLE revision ADD COLUMN journal_from BIGINT NOT NULL DEFAULT 0;
UPDATE revision SET journal_from = value;

-- The trigger's arguments: the kind of change, and the column naming the app or client.
CREATE OR REPLACE FUNCTION moneykit_auth_state_changed() RETURNS trigger AS $$
DECLARE
    changed_revision  BIGINT;
    changed_id        TEXT := '';
BEGIN
    UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value INTO changed_revision;
    IF TG_NARGS > 1 THEN
        IF TG_OP = 'DELETE' THEN
            changed_id := to_jsonb(OLD) ->> TG_ARGV[1];
        ELSE
            changed_id := to_jsonb(NEW) ->> TG_ARGV[1];
        END IF;
    END IF;
    INSERT INTO state_changes (revision, kind, id, at)
        VALUES (changed_revision, TG_ARGV[0], changed_id, floor(extract(epoch FROM now()))::BIGINT);
    PERFORM pg_notify('moneykit_auth_changes', 'state');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER apps_changed ON apps;
CREATE TRIGGER apps_changed AFTER INSERT OR UPDATE OR DELETE ON apps
    FOR EACH ROW EXECUTE FUNCTION moneykit_auth_state_changed('app', 'id');
DROP TRIGGER clients_changed ON clients;
CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH ROW EXECUTE FUNCTION moneykit_auth_state_changed('client', 'id');
DROP TRIGGER client_secrets_changed ON client_secrets;
CREATE TRIGGER client_secrets_changed AFTER INSERT OR DELETE OR UPDATE OF hash, expires_at
    ON client_secrets FOR EACH ROW EXECUTE FUNCTION moneykit_auth_state_changed('client', 'client_id');
DROP TRIGGER trust_rules_changed ON trust_rules;
CREATE TRIGGER trust_rules_changed AFTER INSERT OR UPDATE OR DELETE ON trust_rules
    FOR EACH ROW EXECUTE FUNCTION moneykit_auth_state_changed('client', 'client_id');
DROP TRIGGER keys_changed ON signing_keys;
CREATE TRIGGER keys_changed AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION moneykit_auth_state_changed('key');
