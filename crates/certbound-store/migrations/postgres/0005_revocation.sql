-- certbound store, version 5: revocation is final (issue 11).
--
-- A token's status comes from its own record (issued_tokens.revoked_at), never
-- from its holder's row: revoking a device or a client marks every token it
-- holds, in the same transaction, and a later change of the holder's row can
-- never make one of those tokens valid again. Revoked devices, clients and
-- certificates never change status again. The rules live here, in the
-- database, so that every writer (CLI, admin API, policy apply, a running
-- broker, an operator with sqlite3) is bound by them.

-- PostgreSQL: the same rules as the SQLite version, as PL/pgSQL trigger
-- functions.

-- Revoked is terminal.
CREATE FUNCTION certbound_revoked_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'revoked' AND NEW.status <> 'revoked' THEN
        RAISE EXCEPTION '% is revoked, which is final', TG_ARGV[0];
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER devices_revoked_is_final BEFORE UPDATE OF status ON devices
    FOR EACH ROW EXECUTE FUNCTION certbound_revoked_is_final('device');
CREATE TRIGGER clients_revoked_is_final BEFORE UPDATE OF status ON clients
    FOR EACH ROW EXECUTE FUNCTION certbound_revoked_is_final('client');
CREATE TRIGGER certificates_revoked_is_final BEFORE UPDATE OF status ON certificates
    FOR EACH ROW EXECUTE FUNCTION certbound_revoked_is_final('certificate');

-- Revoking a holder revokes the tokens it holds (same transaction).
CREATE FUNCTION certbound_revoke_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'revoked' AND OLD.status <> 'revoked' THEN
        UPDATE issued_tokens SET revoked_at = NEW.updated_at
         WHERE kind = TG_ARGV[0] AND subject = NEW.id AND revoked_at IS NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER devices_revoke_tokens AFTER UPDATE OF status ON devices
    FOR EACH ROW EXECUTE FUNCTION certbound_revoke_tokens('device');
CREATE TRIGGER clients_revoke_tokens AFTER UPDATE OF status ON clients
    FOR EACH ROW EXECUTE FUNCTION certbound_revoke_tokens('client');

-- A token recorded after its holder was revoked (minted from a registry
-- snapshot a moment old) is recorded revoked.
CREATE FUNCTION certbound_token_of_revoked_holder() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.revoked_at IS NULL AND (
        (NEW.kind = 'device' AND EXISTS (SELECT 1 FROM devices WHERE id = NEW.subject AND status = 'revoked'))
     OR (NEW.kind = 'client' AND EXISTS (SELECT 1 FROM clients WHERE id = NEW.subject AND status = 'revoked'))) THEN
        NEW.revoked_at := NEW.iat;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER issued_tokens_of_revoked_holder BEFORE INSERT ON issued_tokens
    FOR EACH ROW EXECUTE FUNCTION certbound_token_of_revoked_holder();

-- Tokens of holders revoked before this version.
UPDATE issued_tokens SET revoked_at = COALESCE(
        (SELECT updated_at FROM devices WHERE devices.id = issued_tokens.subject), iat)
 WHERE revoked_at IS NULL AND kind = 'device'
   AND subject IN (SELECT id FROM devices WHERE status = 'revoked');
UPDATE issued_tokens SET revoked_at = COALESCE(
        (SELECT updated_at FROM clients WHERE clients.id = issued_tokens.subject), iat)
 WHERE revoked_at IS NULL AND kind = 'client'
   AND subject IN (SELECT id FROM clients WHERE status = 'revoked');

-- Grows whenever the set of revoked certificates changes: the running
-- broker rebuilds its CRLs when it sees a new value (at most once a second),
-- not on every request.
CREATE TABLE crl_epoch (
    id     BIGINT PRIMARY KEY CHECK (id = 1),
    epoch  BIGINT NOT NULL
);
INSERT INTO crl_epoch (id, epoch) VALUES (1, 0);

CREATE FUNCTION certbound_crl_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'UPDATE' AND NEW.status = 'revoked' AND OLD.status <> 'revoked')
       OR (TG_OP = 'INSERT' AND NEW.status = 'revoked')
       OR (TG_OP = 'DELETE' AND OLD.status = 'revoked') THEN
        UPDATE crl_epoch SET epoch = epoch + 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER certificates_crl_epoch AFTER INSERT OR UPDATE OF status OR DELETE ON certificates
    FOR EACH ROW EXECUTE FUNCTION certbound_crl_epoch();
