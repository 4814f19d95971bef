-- certbound store, version 18: attributes and custom claims.
--
-- Devices, groups and clients carry attributes (a JSON object of text,
-- integer and boolean values, checked by the application: at most 32, names
-- [a-z][a-z0-9_]{0,31}, text at most 256 bytes); an API declares which of
-- them go into its tokens (a JSON array of {attribute, jwt, cwt, type}).
-- A group's attributes reach its devices' tokens, so an UPDATE of a group
-- now appends ('group', name) to the change feed.
ALTER TABLE devices ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE groups ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE clients ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE apis ADD COLUMN claims TEXT NOT NULL DEFAULT '[]';

CREATE TRIGGER groups_changed_upd AFTER UPDATE ON groups
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('group', NEW.name); END;
