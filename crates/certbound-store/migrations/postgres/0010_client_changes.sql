-- certbound store, version 10: OAuth clients in the change feed (PostgreSQL
-- twin of migrations/sqlite/0010). Instances now decide /oauth/token from
-- memory too: a change to a client or its grants appends ('client', client
-- id) to the feed and notifies the listeners.
ALTER TABLE registry_changes DROP CONSTRAINT registry_changes_kind_check;
ALTER TABLE registry_changes ADD CONSTRAINT registry_changes_kind_check
    CHECK (kind IN ('device', 'cert', 'group', 'api', 'client'));

CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH ROW EXECUTE FUNCTION certbound_registry_changed('client', 'id');
CREATE TRIGGER client_grants_changed AFTER INSERT OR UPDATE OR DELETE ON client_grants
    FOR EACH ROW EXECUTE FUNCTION certbound_registry_changed('client', 'client_id');
