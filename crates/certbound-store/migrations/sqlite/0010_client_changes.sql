-- certbound store, version 10: OAuth clients in the change feed.
--
-- Instances now decide /oauth/token from memory too: a change to a client or
-- its grants appends ('client', client id) to the feed. SQLite cannot widen a
-- CHECK constraint in place, so the feed table is rebuilt (its rows kept),
-- with the triggers of version 8 dropped and made again around it.
DROP TRIGGER devices_changed_ins;
DROP TRIGGER devices_changed_upd;
DROP TRIGGER devices_changed_del;
DROP TRIGGER device_groups_changed_ins;
DROP TRIGGER device_groups_changed_del;
DROP TRIGGER certificates_changed_ins;
DROP TRIGGER certificates_changed_upd;
DROP TRIGGER certificates_changed_del;
DROP TRIGGER groups_changed_del;
DROP TRIGGER grants_changed_ins;
DROP TRIGGER grants_changed_upd;
DROP TRIGGER grants_changed_del;
DROP TRIGGER apis_changed_ins;
DROP TRIGGER apis_changed_upd;
DROP TRIGGER apis_changed_del;

CREATE TABLE registry_changes_v10 (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind  TEXT NOT NULL CHECK (kind IN ('device', 'cert', 'group', 'api', 'client')),
    key   TEXT NOT NULL
);
INSERT INTO registry_changes_v10 (id, kind, key) SELECT id, kind, key FROM registry_changes;
DROP TABLE registry_changes;
ALTER TABLE registry_changes_v10 RENAME TO registry_changes;

CREATE TRIGGER devices_changed_ins AFTER INSERT ON devices
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('device', NEW.id); END;
CREATE TRIGGER devices_changed_upd AFTER UPDATE ON devices
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('device', NEW.id); END;
CREATE TRIGGER devices_changed_del AFTER DELETE ON devices
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('device', OLD.id); END;

CREATE TRIGGER device_groups_changed_ins AFTER INSERT ON device_groups
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('device', NEW.device_id); END;
CREATE TRIGGER device_groups_changed_del AFTER DELETE ON device_groups
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('device', OLD.device_id); END;

CREATE TRIGGER certificates_changed_ins AFTER INSERT ON certificates
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('cert', NEW.thumbprint); END;
CREATE TRIGGER certificates_changed_upd AFTER UPDATE ON certificates
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('cert', NEW.thumbprint); END;
CREATE TRIGGER certificates_changed_del AFTER DELETE ON certificates
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('cert', OLD.thumbprint); END;

CREATE TRIGGER groups_changed_del AFTER DELETE ON groups
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('group', OLD.name); END;
CREATE TRIGGER grants_changed_ins AFTER INSERT ON grants
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('group', NEW.group_name); END;
CREATE TRIGGER grants_changed_upd AFTER UPDATE ON grants
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('group', NEW.group_name); END;
CREATE TRIGGER grants_changed_del AFTER DELETE ON grants
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('group', OLD.group_name); END;

CREATE TRIGGER apis_changed_ins AFTER INSERT ON apis
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('api', NEW.id); END;
CREATE TRIGGER apis_changed_upd AFTER UPDATE ON apis
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('api', NEW.id); END;
CREATE TRIGGER apis_changed_del AFTER DELETE ON apis
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('api', OLD.id); END;

CREATE TRIGGER clients_changed_ins AFTER INSERT ON clients
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('client', NEW.id); END;
CREATE TRIGGER clients_changed_upd AFTER UPDATE ON clients
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('client', NEW.id); END;
CREATE TRIGGER clients_changed_del AFTER DELETE ON clients
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('client', OLD.id); END;
CREATE TRIGGER client_grants_changed_ins AFTER INSERT ON client_grants
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('client', NEW.client_id); END;
CREATE TRIGGER client_grants_changed_upd AFTER UPDATE ON client_grants
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('client', NEW.client_id); END;
CREATE TRIGGER client_grants_changed_del AFTER DELETE ON client_grants
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('client', OLD.client_id); END;
