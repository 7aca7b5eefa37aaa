-- A journal of what each revision changed: an app, a client (its row, its secrets or its
-- trust rules) or the signing keys. Running servers catch up by reading only those rows
-- instead of every client (with 100 000 clients a full reload took seconds on every
-- replica). The triggers that bump the revision write it, in the same transaction, so no
-- write path can forget it. Every server's background refresh prunes entries older than
-- an hour and moves journal_from past them; a server whose snapshot is older than
-- journal_from reloads everything. at is whole Unix seconds (truncated).
CREATE TABLE state_changes (
    revision  INTEGER NOT NULL,
    kind      TEXT NOT NULL,           -- 'app', 'client' or 'key'
    id        TEXT NOT NULL,           -- the app's or client's id; '' for keys
    at        INTEGER NOT NULL
);
CREATE INDEX state_changes_revision ON state_changes (revision);
CREATE INDEX state_changes_at ON state_changes (at);

ALTER TABLE revision ADD COLUMN journal_from INTEGER NOT NULL DEFAULT 0;
UPDATE revision SET journal_from = value;


DROP TRIGGER apps_changed_insert;
CREATE TRIGGER apps_changed_insert AFTER INSERT ON apps BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'app', NEW.id, CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;
DROP TRIGGER apps_changed_update;
CREATE TRIGGER apps_changed_update AFTER UPDATE ON apps BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'app', NEW.id, CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;
DROP TRIGGER apps_changed_delete;
CREATE TRIGGER apps_changed_delete AFTER DELETE ON apps BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'app', OLD.id, CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;

DROP TRIGGER clients_changed_insert;
CREATE TRIGGER clients_changed_insert AFTER INSERT ON clients BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'client', NEW.id, CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;
DROP TRIGGER clients_changed_update;
CREATE TRIGGER clients_changed_update AFTER UPDATE ON clients BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'client', NEW.id, CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;
DROP TRIGGER clients_changed_delete;
CREATE TRIGGER clients_changed_delete AFTER DELETE ON clients BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'client', OLD.id, CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;

DROP TRIGGER client_secrets_changed_insert;
CREATE TRIGGER client_secrets_changed_insert AFTER INSERT ON client_secrets BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'client', NEW.client_id, CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;
DROP TRIGGER client_secrets_changed_update;
CREATE TRIGGER client_secrets_changed_update AFTER UPDATE OF hash, expires_at ON client_secrets BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'client', NEW.client_id, CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;
DROP TRIGGER client_secrets_changed_delete;
CREATE TRIGGER client_secrets_changed_delete AFTER DELETE ON client_secrets BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'client', OLD.client_id, CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;

DROP TRIGGER trust_rules_changed_insert;
CREATE TRIGGER trust_rules_changed_insert AFTER INSERT ON trust_rules BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'client', NEW.client_id, CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;
DROP TRIGGER trust_rules_changed_update;
CREATE TRIGGER trust_rules_changed_update AFTER UPDATE ON trust_rules BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'client', NEW.client_id, CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;
DROP TRIGGER trust_rules_changed_delete;
CREATE TRIGGER trust_rules_changed_delete AFTER DELETE ON trust_rules BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'client', OLD.client_id, CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;

DROP TRIGGER keys_changed_insert;
CREATE TRIGGER keys_changed_insert AFTER INSERT ON signing_keys BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'key', '', CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;
DROP TRIGGER keys_changed_update;
CREATE TRIGGER keys_changed_update AFTER UPDATE ON signing_keys BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'key', '', CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;
DROP TRIGGER keys_changed_delete;
CREATE TRIGGER keys_changed_delete AFTER DELETE ON signing_keys BEGIN
    UPDATE revision SET value = value + 1;
    INSERT INTO state_changes (revision, kind, id, at)
        SELECT value, 'key', '', CAST(strftime('%s', 'now') AS INTEGER) FROM revision;
END;
