-- certbound store, version 16: private_key_jwt client authentication
-- (RFC 7523) and dynamic client registration (RFC 7591, RFC 7592).
-- PostgreSQL twin of migrations/sqlite/0016: the clients table is altered in
-- place (the SQLite version rebuilds it, which ends in the same table).

ALTER TABLE clients ADD COLUMN jwks TEXT;      -- private_key_jwt: the client's JWK Set (public keys only)
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;  -- private_key_jwt: where the JWK Set is fetched
ALTER TABLE clients DROP CONSTRAINT clients_auth_method;
ALTER TABLE clients DROP CONSTRAINT clients_credential;
ALTER TABLE clients ADD CONSTRAINT clients_auth_method CHECK (auth_method IN ('client_secret',
    'client_secret_basic', 'client_secret_post', 'tls_client_auth', 'self_signed_tls_client_auth',
    'private_key_jwt'));
ALTER TABLE clients ADD CONSTRAINT clients_credential CHECK (status = 'revoked'
    OR (auth_method IN ('client_secret', 'client_secret_basic', 'client_secret_post')
        AND secret_hash IS NOT NULL)
    OR (auth_method = 'tls_client_auth' AND (tls_subject IS NOT NULL OR tls_san IS NOT NULL))
    OR (auth_method = 'self_signed_tls_client_auth' AND thumbprint IS NOT NULL)
    OR (auth_method = 'private_key_jwt' AND (jwks IS NOT NULL OR jwks_uri IS NOT NULL)));

-- The jti of every accepted client assertion, until it expires (then pruned).
CREATE TABLE client_assertion_jtis (
    client_id   TEXT NOT NULL,
    jti         TEXT NOT NULL,
    exp         BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_exp ON client_assertion_jtis(exp);

-- Initial access tokens for dynamic client registration (RFC 7591 §3).
CREATE TABLE registration_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    grants      TEXT NOT NULL,
    methods     TEXT NOT NULL,
    uses_left   BIGINT NOT NULL CHECK (uses_left >= 0),
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- A client registered through /oauth/register (RFC 7592 management).
CREATE TABLE client_registrations (
    client_id           TEXT PRIMARY KEY,
    access_token_hash   TEXT NOT NULL UNIQUE,
    token_id            TEXT NOT NULL,
    grants              TEXT NOT NULL,
    methods             TEXT NOT NULL,
    metadata            TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
