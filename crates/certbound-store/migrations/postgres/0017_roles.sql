-- certbound store, version 17: roles (PostgreSQL twin of
-- migrations/sqlite/0017). A role is a named set of grants across APIs;
-- clients and groups get roles; effective permissions are the union. Every
-- change that alters someone's effective permissions appends the holders to
-- the change feed ('client', id) / ('group', name) and notifies listeners.
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

CREATE TABLE role_grants (
    role_name   TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    api_id      TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    scopes      TEXT NOT NULL,
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

CREATE FUNCTION certbound_role_grants_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    role TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        role := OLD.role_name;
    ELSE
        role := NEW.role_name;
    END IF;
    INSERT INTO registry_changes (kind, key)
        SELECT 'client', client_id FROM client_roles WHERE role_name = role;
    INSERT INTO registry_changes (kind, key)
        SELECT 'group', group_name FROM group_roles WHERE role_name = role;
    PERFORM pg_notify('certbound_registry', '');
    RETURN NULL;
END $$;

CREATE TRIGGER role_grants_changed AFTER INSERT OR UPDATE OR DELETE ON role_grants
    FOR EACH ROW EXECUTE FUNCTION certbound_role_grants_changed();
CREATE TRIGGER client_roles_changed AFTER INSERT OR DELETE ON client_roles
    FOR EACH ROW EXECUTE FUNCTION certbound_registry_changed('client', 'client_id');
CREATE TRIGGER group_roles_changed AFTER INSERT OR DELETE ON group_roles
    FOR EACH ROW EXECUTE FUNCTION certbound_registry_changed('group', 'group_name');
