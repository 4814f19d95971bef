-- certbound store, version 5: revocation is final (issue 11).
--
-- A token's status comes from its own record (issued_tokens.revoked_at), never
-- from its holder's row: revoking a device or a client marks every token it
-- holds, in the same transaction, and a later change of the holder's row can
-- never make one of those tokens valid again. Revoked devices, clients and
-- certificates never change status again. The rules live here, in the
-- database, so that every writer (CLI, admin API, policy apply, a running
-- broker, an operator with sqlite3) is bound by them.

-- Revoked is terminal.
CREATE TRIGGER devices_revoked_is_final BEFORE UPDATE OF status ON devices
WHEN OLD.status = 'revoked' AND NEW.status != 'revoked'
BEGIN
    SELECT RAISE(ABORT, 'device is revoked, which is final');
END;

CREATE TRIGGER clients_revoked_is_final BEFORE UPDATE OF status ON clients
WHEN OLD.status = 'revoked' AND NEW.status != 'revoked'
BEGIN
    SELECT RAISE(ABORT, 'client is revoked, which is final');
END;

CREATE TRIGGER certificates_revoked_is_final BEFORE UPDATE OF status ON certificates
WHEN OLD.status = 'revoked' AND NEW.status != 'revoked'
BEGIN
    SELECT RAISE(ABORT, 'certificate is revoked, which is final');
END;

-- Revoking a holder revokes the tokens it holds (same transaction).
CREATE TRIGGER devices_revoke_tokens AFTER UPDATE OF status ON devices
WHEN NEW.status = 'revoked' AND OLD.status != 'revoked'
BEGIN
    UPDATE issued_tokens SET revoked_at = NEW.updated_at
     WHERE kind = 'device' AND subject = NEW.id AND revoked_at IS NULL;
END;

CREATE TRIGGER clients_revoke_tokens AFTER UPDATE OF status ON clients
WHEN NEW.status = 'revoked' AND OLD.status != 'revoked'
BEGIN
    UPDATE issued_tokens SET revoked_at = NEW.updated_at
     WHERE kind = 'client' AND subject = NEW.id AND revoked_at IS NULL;
END;

-- A token recorded after its holder was revoked (minted from a registry
-- snapshot a moment old) is recorded revoked.
CREATE TRIGGER issued_tokens_of_revoked_holder AFTER INSERT ON issued_tokens
WHEN NEW.revoked_at IS NULL AND (
    (NEW.kind = 'device' AND EXISTS (SELECT 1 FROM devices WHERE id = NEW.subject AND status = 'revoked'))
 OR (NEW.kind = 'client' AND EXISTS (SELECT 1 FROM clients WHERE id = NEW.subject AND status = 'revoked')))
BEGIN
    UPDATE issued_tokens SET revoked_at = NEW.iat WHERE jti = NEW.jti;
END;

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
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    epoch  INTEGER NOT NULL
);
INSERT INTO crl_epoch (id, epoch) VALUES (1, 0);

CREATE TRIGGER certificates_revoked_epoch AFTER UPDATE OF status ON certificates
WHEN NEW.status = 'revoked' AND OLD.status != 'revoked'
BEGIN
    UPDATE crl_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER certificates_inserted_revoked_epoch AFTER INSERT ON certificates
WHEN NEW.status = 'revoked'
BEGIN
    UPDATE crl_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER certificates_deleted_revoked_epoch AFTER DELETE ON certificates
WHEN OLD.status = 'revoked'
BEGIN
    UPDATE crl_epoch SET epoch = epoch + 1 WHERE id = 1;
END;
