-- certbound store, version 19 (PostgreSQL twin of migrations/sqlite/0019): API keys hold roles and attributes too (as clients and
-- groups, version 17). Keys are read from the database on every use, so no
-- change-feed trigger is needed: a role change counts from the next use.
CREATE TABLE api_key_roles (
    key_id      TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    role_name   TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    PRIMARY KEY (key_id, role_name)
);
CREATE INDEX api_key_roles_role ON api_key_roles(role_name);

-- API keys carry attributes too (custom claims and {attr.NAME} scopes of
-- the tokens they are exchanged for), as devices, groups and clients
-- (version 18).
ALTER TABLE api_keys ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
