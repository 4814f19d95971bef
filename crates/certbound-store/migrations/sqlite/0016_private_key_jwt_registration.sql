-- certbound store, version 16: private_key_jwt client authentication
-- (RFC 7523) and dynamic client registration (RFC 7591, RFC 7592).
--
-- * A private_key_jwt client is registered with its public keys: a JWK Set
--   (`jwks`, public members only) or the URL it is fetched from (`jwks_uri`).
-- * The jti of every accepted client assertion is remembered until the
--   assertion expires (primary key (client_id, jti): insert-or-refuse, so a
--   replay is refused by every instance sharing the store).
-- * Initial access tokens (`certbound client registration-token`) and the
--   clients registered with them (their registration access token and the
--   bounds they stay within).
--
-- SQLite cannot widen the auth_method CHECK in place: the clients table is
-- rebuilt as in version 4. Dropping it cascades to client_grants, so the
-- grants are kept aside and put back; the triggers on clients (versions 5
-- and 10) go with the table and are made again, and the trigger of version
-- 5 on issued_tokens that reads clients is dropped and made again around the
-- rebuild (a rename re-checks every trigger that names the table). Nothing
-- else references clients. The registry_changes kinds are unchanged.

DROP TRIGGER issued_tokens_of_revoked_holder;

CREATE TABLE clients_v16 (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    secret_hash   TEXT,                        -- hex SHA-256 of the secret (secret methods)
    tls_subject   TEXT,                        -- tls_client_auth: RFC 4514 subject DN
    tls_san       TEXT,                        -- tls_client_auth: "dns:<name>", "uri:<uri>", "ip:<addr>" or "email:<addr>"
    thumbprint    TEXT,                        -- self_signed_tls_client_auth: base64url SHA-256 of the certificate DER (x5t#S256)
    jwks          TEXT,                        -- private_key_jwt: the client's JWK Set (public keys only)
    jwks_uri      TEXT,                        -- private_key_jwt: where the JWK Set is fetched (allow-listed https URL)
    auth_method   TEXT NOT NULL CHECK (auth_method IN ('client_secret', 'client_secret_basic',
                      'client_secret_post', 'tls_client_auth', 'self_signed_tls_client_auth',
                      'private_key_jwt')),
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CHECK (status = 'revoked'
        OR (auth_method IN ('client_secret', 'client_secret_basic', 'client_secret_post')
            AND secret_hash IS NOT NULL)
        OR (auth_method = 'tls_client_auth' AND (tls_subject IS NOT NULL OR tls_san IS NOT NULL))
        OR (auth_method = 'self_signed_tls_client_auth' AND thumbprint IS NOT NULL)
        OR (auth_method = 'private_key_jwt' AND (jwks IS NOT NULL OR jwks_uri IS NOT NULL)))
);

INSERT INTO clients_v16 (id, name, secret_hash, tls_subject, tls_san, thumbprint, jwks, jwks_uri,
                         auth_method, status, created_at, updated_at)
SELECT id, name, secret_hash, tls_subject, tls_san, thumbprint, NULL, NULL,
       auth_method, status, created_at, updated_at
FROM clients;

CREATE TABLE client_grants_v16_keep AS SELECT client_id, api_id, scopes FROM client_grants;
DROP TABLE clients;
ALTER TABLE clients_v16 RENAME TO clients;
INSERT INTO client_grants (client_id, api_id, scopes)
    SELECT client_id, api_id, scopes FROM client_grants_v16_keep;
DROP TABLE client_grants_v16_keep;

CREATE UNIQUE INDEX clients_tls_subject ON clients(tls_subject) WHERE tls_subject IS NOT NULL;
CREATE UNIQUE INDEX clients_tls_san ON clients(tls_san) WHERE tls_san IS NOT NULL;
CREATE UNIQUE INDEX clients_thumbprint ON clients(thumbprint) WHERE thumbprint IS NOT NULL;

-- Version 5: revoked is terminal, revoking a client revokes its tokens.
CREATE TRIGGER clients_revoked_is_final BEFORE UPDATE OF status ON clients
WHEN OLD.status = 'revoked' AND NEW.status != 'revoked'
BEGIN
    SELECT RAISE(ABORT, 'client is revoked, which is final');
END;
CREATE TRIGGER clients_revoke_tokens AFTER UPDATE OF status ON clients
WHEN NEW.status = 'revoked' AND OLD.status != 'revoked'
BEGIN
    UPDATE issued_tokens SET revoked_at = NEW.updated_at
     WHERE kind = 'client' AND subject = NEW.id AND revoked_at IS NULL;
END;
CREATE TRIGGER issued_tokens_of_revoked_holder AFTER INSERT ON issued_tokens
WHEN NEW.revoked_at IS NULL AND (
    (NEW.kind = 'device' AND EXISTS (SELECT 1 FROM devices WHERE id = NEW.subject AND status = 'revoked'))
 OR (NEW.kind = 'client' AND EXISTS (SELECT 1 FROM clients WHERE id = NEW.subject AND status = 'revoked')))
BEGIN
    UPDATE issued_tokens SET revoked_at = NEW.iat WHERE jti = NEW.jti;
END;

-- Version 10: clients in the change feed.
CREATE TRIGGER clients_changed_ins AFTER INSERT ON clients
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('client', NEW.id); END;
CREATE TRIGGER clients_changed_upd AFTER UPDATE ON clients
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('client', NEW.id); END;
CREATE TRIGGER clients_changed_del AFTER DELETE ON clients
BEGIN INSERT INTO registry_changes (kind, key) VALUES ('client', OLD.id); END;
-- The rebuild is a change of every client (instances re-read them).
INSERT INTO registry_changes (kind, key) SELECT 'client', id FROM clients;

-- The jti of every accepted client assertion, until it expires (then pruned).
CREATE TABLE client_assertion_jtis (
    client_id   TEXT NOT NULL,
    jti         TEXT NOT NULL,
    exp         INTEGER NOT NULL,              -- the assertion's exp, Unix seconds
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_exp ON client_assertion_jtis(exp);

-- Initial access tokens for dynamic client registration (RFC 7591 §3).
CREATE TABLE registration_tokens (
    id          TEXT PRIMARY KEY,              -- shown in lists (never the token)
    token_hash  TEXT NOT NULL UNIQUE,          -- hex SHA-256 of the token
    grants      TEXT NOT NULL,                 -- JSON {"<api>": "s1 s2", ...}: the most a client may get
    methods     TEXT NOT NULL,                 -- space separated auth methods a client may register
    uses_left   INTEGER NOT NULL CHECK (uses_left >= 0),
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- A client registered through /oauth/register (RFC 7592 management).
CREATE TABLE client_registrations (
    client_id           TEXT PRIMARY KEY,
    access_token_hash   TEXT NOT NULL UNIQUE,  -- hex SHA-256 of the registration access token
    token_id            TEXT NOT NULL,         -- the initial access token it was registered with
    grants              TEXT NOT NULL,         -- the bounds (JSON, as registration_tokens.grants)
    methods             TEXT NOT NULL,
    metadata            TEXT NOT NULL,         -- the client metadata as registered (JSON)
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
