-- certbound store, version 15: API keys (PostgreSQL twin of
-- migrations/sqlite/0015; see there). Only the hex SHA-256 of a key is
-- stored; keys are read on every use, so a revocation takes effect at once
-- on every instance.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys(name) WHERE status = 'active';

CREATE TABLE api_key_grants (
    key_id   TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    api_id   TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    scopes   TEXT NOT NULL,
    PRIMARY KEY (key_id, api_id)
);

CREATE TRIGGER api_keys_revoked_is_final BEFORE UPDATE OF status ON api_keys
    FOR EACH ROW EXECUTE FUNCTION certbound_revoked_is_final('API key');

CREATE FUNCTION certbound_revoke_api_key_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'revoked' AND OLD.status <> 'revoked' THEN
        UPDATE issued_tokens SET revoked_at = NEW.updated_at
         WHERE kind = 'client' AND subject = 'cb_apikey:' || NEW.name AND revoked_at IS NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER api_keys_revoke_tokens AFTER UPDATE OF status ON api_keys
    FOR EACH ROW EXECUTE FUNCTION certbound_revoke_api_key_tokens();

CREATE FUNCTION certbound_token_of_revoked_api_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.revoked_at IS NULL AND NEW.kind = 'client' AND substr(NEW.subject, 1, 10) = 'cb_apikey:'
       AND NOT EXISTS (SELECT 1 FROM api_keys WHERE status = 'active' AND name = substr(NEW.subject, 11)) THEN
        NEW.revoked_at := NEW.iat;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER issued_tokens_of_revoked_api_key BEFORE INSERT ON issued_tokens
    FOR EACH ROW EXECUTE FUNCTION certbound_token_of_revoked_api_key();
