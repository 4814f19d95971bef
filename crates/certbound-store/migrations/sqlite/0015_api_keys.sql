-- certbound store, version 15: API keys (a job that can only send a header).
--
-- A key is `cbk_` + base64url of 32 random bytes; only its hex SHA-256 is
-- stored (a 256-bit random value needs no slow hash: there is no dictionary
-- to attack). A key is read from this table on every use, so a revocation
-- takes effect at once on every instance (no change feed, no snapshot).
-- Revoking a key clears its hash, revokes the tokens it was exchanged for
-- (kind 'client', subject 'cb_apikey:<name>') and is final. A revoked key
-- keeps its row (audit, tokens); its name may be given to a new key.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,            -- random row id (not secret, never the key)
    name          TEXT NOT NULL,               -- operator-chosen; unique among active keys
    key_hash      TEXT NOT NULL UNIQUE,        -- hex SHA-256 of the key; 'revoked-<id>' once revoked
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    expires_at    INTEGER,                     -- NULL: no expiry
    last_used_at  INTEGER,                     -- updated at most once a minute
    revoked_at    INTEGER
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys(name) WHERE status = 'active';

CREATE TABLE api_key_grants (
    key_id   TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    api_id   TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    scopes   TEXT NOT NULL,                    -- space separated
    PRIMARY KEY (key_id, api_id)
);

CREATE TRIGGER api_keys_revoked_is_final BEFORE UPDATE OF status ON api_keys
WHEN OLD.status = 'revoked' AND NEW.status != 'revoked'
BEGIN
    SELECT RAISE(ABORT, 'API key is revoked, which is final');
END;

-- Revoking a key revokes the tokens it was exchanged for (same transaction).
CREATE TRIGGER api_keys_revoke_tokens AFTER UPDATE OF status ON api_keys
WHEN NEW.status = 'revoked' AND OLD.status != 'revoked'
BEGIN
    UPDATE issued_tokens SET revoked_at = NEW.updated_at
     WHERE kind = 'client' AND subject = 'cb_apikey:' || NEW.name AND revoked_at IS NULL;
END;

-- A token recorded when no active key of its name exists (the key was
-- revoked between its check and the record) is recorded revoked.
CREATE TRIGGER issued_tokens_of_revoked_api_key AFTER INSERT ON issued_tokens
WHEN NEW.revoked_at IS NULL AND NEW.kind = 'client' AND substr(NEW.subject, 1, 10) = 'cb_apikey:'
 AND NOT EXISTS (SELECT 1 FROM api_keys WHERE status = 'active' AND name = substr(NEW.subject, 11))
BEGIN
    UPDATE issued_tokens SET revoked_at = NEW.iat WHERE jti = NEW.jti;
END;
