-- certbound store, version 18: attributes and custom claims (PostgreSQL
-- twin of migrations/sqlite/0018).
ALTER TABLE devices ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE groups ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE clients ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE apis ADD COLUMN claims TEXT NOT NULL DEFAULT '[]';

CREATE TRIGGER groups_changed_upd AFTER UPDATE ON groups
    FOR EACH ROW EXECUTE FUNCTION certbound_registry_changed('group', 'name');
