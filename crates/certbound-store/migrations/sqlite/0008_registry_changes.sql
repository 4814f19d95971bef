-- certbound store, version 8: the registry change feed.
--
-- Every instance keeps the registry the token path needs (certificates by
-- thumbprint, devices, their groups, grants, APIs) in memory and follows this
-- table to stay current: each change to those tables appends (kind, key),
-- and an instance re-reads just those keys. Rows are deleted by housekeeping
-- once every instance has had time to see them.
CREATE TABLE registry_changes (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind  TEXT NOT NULL CHECK (kind IN ('device', 'cert', 'group', 'api')),
    key   TEXT NOT NULL
);

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
