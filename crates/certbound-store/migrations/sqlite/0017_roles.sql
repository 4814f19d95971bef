-- certbound store, version 17: roles (the Logto model).
--
-- A role is a named set of permissions (grants) across APIs. Clients and
-- groups get roles; their effective permissions are the union of their own
-- grants and those of their roles. Instances decide tokens from memory, so
-- every change that alters someone's effective permissions appends the
-- holders to the change feed: a client's ('client', id), a group's ('group',
-- name). A change to a role's grants appends every holder of the role.
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE TABLE role_grants (
    role_name   TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    api_id      TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    scopes      TEXT NOT NULL,               -- space separated; may contain {device}
    PRIMARY KEY (role_name, api_id)
);

CREATE TABLE client_roles (
    client_id   TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    role_name   TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    PRIMARY KEY (client_id, role_name)
);
CREATE INDEX client_roles_role ON client_roles(role_name);

CREATE TABLE group_roles (
    group_name  TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
    role_name   TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    PRIMARY KEY (group_name, role_name)
);
CREATE INDEX group_roles_role ON group_roles(role_name);

CREATE TRIGGER role_grants_changed_ins AFTER INSERT ON role_grants
BEGIN
    INSERT INTO registry_changes (kind, key)
        SELECT 'client', client_id FROM client_roles WHERE role_name = NEW.role_name;
    INSERT INTO registry_changes (kind, key)
        SELECT 'group', group_name FROM group_roles WHERE role_name = NEW.role_name;
END;
CREATE TRIGGER role_grants_changed_upd AFTER UPDATE ON role_grants
BEGIN
    INSERT INTO registry_changes (kind, key)
        SELECT 'client', client_id FROM client_roles WHERE role_name = NEW.role_name;
    INSERT INTO registry_changes (kind, key)
        SELECT 'group', group_name FROM group_roles WHERE role_name = NEW.role_name;
END;
CREATE TRIGGER role_grants_changed_del AFTER DELETE ON role_grants
BEGIN
    INSERT INTO registry_changes (kind, key)
        SELECT 'client', client_id FROM client_roles WHERE role_name = OLD.role_name;
    INSERT INTO registry_changes (kind, key)
        SELECT 'group', group_name FROM group_roles WHERE role_name = OLD.role_name;
END;

CREATE TRIGGER client_roles_changed_ins AFTER INSERT ON client_roles
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('client', NEW.client_id); END;
CREATE TRIGGER client_roles_changed_del AFTER DELETE ON client_roles
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('client', OLD.client_id); END;

CREATE TRIGGER group_roles_changed_ins AFTER INSERT ON group_roles
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('group', NEW.group_name); END;
CREATE TRIGGER group_roles_changed_del AFTER DELETE ON group_roles
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('group', OLD.group_name); END;
