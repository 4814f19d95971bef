-- certbound store, version 2: backend-service clients (OAuth 2.0 client
-- credentials), issued-token records (introspection, revocation, status
-- lists) and the signing-key ring (rotation).

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,            -- client_id (random, printed once at creation)
    name          TEXT NOT NULL UNIQUE,        -- operator-chosen name
    secret_hash   TEXT,                        -- hex SHA-256 of the 256-bit secret; NULL: no secret
    tls_subject   TEXT,                        -- RFC 4514 subject DN for tls_client_auth; NULL: no mTLS
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CHECK (secret_hash IS NOT NULL OR tls_subject IS NOT NULL)
);
CREATE UNIQUE INDEX clients_tls_subject ON clients(tls_subject) WHERE tls_subject IS NOT NULL;

CREATE TABLE client_grants (
    client_id   TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    api_id      TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    scopes      TEXT NOT NULL,                 -- space separated
    PRIMARY KEY (client_id, api_id)
);

-- One row per status list; entries are handed out in blocks (see next_idx).
CREATE TABLE status_lists (
    id          INTEGER PRIMARY KEY,
    size        INTEGER NOT NULL,              -- entries in the list
    next_idx    INTEGER NOT NULL DEFAULT 0,    -- first entry not yet reserved
    created_at  INTEGER NOT NULL
);

-- Every issued token (device CWTs and client JWT/CWTs).
CREATE TABLE issued_tokens (
    jti         TEXT PRIMARY KEY,              -- hex cti / the JWT jti
    kind        TEXT NOT NULL CHECK (kind IN ('device', 'client')),
    subject     TEXT NOT NULL,                 -- device id or client id
    api_id      TEXT NOT NULL,
    scope       TEXT NOT NULL,
    format      TEXT NOT NULL,                 -- cwt | jwt
    kid         TEXT NOT NULL,
    cnf         TEXT,                          -- bound certificate: hex SHA-256 of its DER, or key thumbprint
    list_id     INTEGER,
    list_idx    INTEGER,
    iat         INTEGER NOT NULL,
    exp         INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX issued_tokens_subject ON issued_tokens(kind, subject);
CREATE INDEX issued_tokens_list ON issued_tokens(list_id, list_idx);

-- Signing keys. The private keys stay in DIR/keys/<kid>.key.pem; this ring
-- says when each signs and until when it is published.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    created_at    INTEGER NOT NULL,            -- published from here on
    active_from   INTEGER NOT NULL,            -- signs from here on (the newest active key signs)
    retire_after  INTEGER                      -- unpublished from here on; NULL: not scheduled
);
