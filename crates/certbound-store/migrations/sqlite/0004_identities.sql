-- certbound store, version 4: identity kinds (issue 11).
--
-- * Every client has exactly one pinned authentication method (RFC 8414
--   names): client_secret (Basic or form, never a certificate; the default and
--   what older clients become), client_secret_basic, client_secret_post,
--   tls_client_auth (RFC 8705 PKI method: registered subject DN or one SAN)
--   or self_signed_tls_client_auth (RFC 8705: pinned certificate thumbprint).
-- * Service certificates are recorded when certbound issues them, so that
--   they can be listed and revoked.
--
-- SQLite cannot drop the old CHECK (secret or subject) with ALTER TABLE: the
-- clients table is rebuilt. Dropping it cascades to client_grants, so the
-- grants are kept aside and put back.

CREATE TABLE clients_v4 (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    secret_hash   TEXT,                        -- hex SHA-256 of the secret (secret methods)
    tls_subject   TEXT,                        -- tls_client_auth: RFC 4514 subject DN
    tls_san       TEXT,                        -- tls_client_auth: "dns:<name>", "uri:<uri>", "ip:<addr>" or "email:<addr>"
    thumbprint    TEXT,                        -- self_signed_tls_client_auth: base64url SHA-256 of the certificate DER (x5t#S256)
    auth_method   TEXT NOT NULL CHECK (auth_method IN ('client_secret', 'client_secret_basic',
                      'client_secret_post', 'tls_client_auth', 'self_signed_tls_client_auth')),
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CHECK (status = 'revoked'
        OR (auth_method IN ('client_secret', 'client_secret_basic', 'client_secret_post')
            AND secret_hash IS NOT NULL)
        OR (auth_method = 'tls_client_auth' AND (tls_subject IS NOT NULL OR tls_san IS NOT NULL))
        OR (auth_method = 'self_signed_tls_client_auth' AND thumbprint IS NOT NULL))
);

INSERT INTO clients_v4 (id, name, secret_hash, tls_subject, tls_san, thumbprint, auth_method,
                        status, created_at, updated_at)
SELECT id, name, secret_hash, tls_subject, NULL, NULL,
       CASE WHEN tls_subject IS NOT NULL THEN 'tls_client_auth' ELSE 'client_secret' END,
       status, created_at, updated_at
FROM clients;

CREATE TABLE client_grants_v4_keep AS SELECT client_id, api_id, scopes FROM client_grants;
DROP TABLE clients;
ALTER TABLE clients_v4 RENAME TO clients;
INSERT INTO client_grants (client_id, api_id, scopes)
    SELECT client_id, api_id, scopes FROM client_grants_v4_keep;
DROP TABLE client_grants_v4_keep;

CREATE UNIQUE INDEX clients_tls_subject ON clients(tls_subject) WHERE tls_subject IS NOT NULL;
CREATE UNIQUE INDEX clients_tls_san ON clients(tls_san) WHERE tls_san IS NOT NULL;
CREATE UNIQUE INDEX clients_thumbprint ON clients(thumbprint) WHERE thumbprint IS NOT NULL;

-- Service certificates certbound issued (`certbound service provision`, the
-- broker's own MQTT identity at init). A revoked one is refused at the HTTPS
-- TLS layer and at /oauth/*.
CREATE TABLE service_certs (
    serial      TEXT PRIMARY KEY,              -- lowercase hex
    name        TEXT NOT NULL,                 -- the service name (SAN urn:certbound:service:<name>)
    thumbprint  TEXT NOT NULL UNIQUE,          -- lowercase hex SHA-256 of the DER
    not_after   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX service_certs_name ON service_certs(name);
