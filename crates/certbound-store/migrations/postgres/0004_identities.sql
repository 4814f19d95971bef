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
-- PostgreSQL: the clients table is altered in place (the SQLite version of
-- this migration rebuilds it, which ends in the same table).

ALTER TABLE clients DROP CONSTRAINT clients_check;
ALTER TABLE clients ADD COLUMN tls_san TEXT;        -- tls_client_auth: "dns:<name>", "uri:<uri>", "ip:<addr>" or "email:<addr>"
ALTER TABLE clients ADD COLUMN thumbprint TEXT;     -- self_signed_tls_client_auth: base64url SHA-256 of the certificate DER (x5t#S256)
ALTER TABLE clients ADD COLUMN auth_method TEXT;
UPDATE clients SET auth_method =
    CASE WHEN tls_subject IS NOT NULL THEN 'tls_client_auth' ELSE 'client_secret' END;
ALTER TABLE clients ALTER COLUMN auth_method SET NOT NULL;
ALTER TABLE clients ADD CONSTRAINT clients_auth_method CHECK (auth_method IN ('client_secret',
    'client_secret_basic', 'client_secret_post', 'tls_client_auth', 'self_signed_tls_client_auth'));
ALTER TABLE clients ADD CONSTRAINT clients_credential CHECK (status = 'revoked'
    OR (auth_method IN ('client_secret', 'client_secret_basic', 'client_secret_post')
        AND secret_hash IS NOT NULL)
    OR (auth_method = 'tls_client_auth' AND (tls_subject IS NOT NULL OR tls_san IS NOT NULL))
    OR (auth_method = 'self_signed_tls_client_auth' AND thumbprint IS NOT NULL));

CREATE UNIQUE INDEX clients_tls_san ON clients(tls_san) WHERE tls_san IS NOT NULL;
CREATE UNIQUE INDEX clients_thumbprint ON clients(thumbprint) WHERE thumbprint IS NOT NULL;

-- Service certificates certbound issued (`certbound service provision`, the
-- broker's own MQTT identity at init). A revoked one is refused at the HTTPS
-- TLS layer and at /oauth/*.
CREATE TABLE service_certs (
    serial      TEXT PRIMARY KEY,              -- lowercase hex
    name        TEXT NOT NULL,                 -- the service name (SAN urn:certbound:service:<name>)
    thumbprint  TEXT NOT NULL UNIQUE,          -- lowercase hex SHA-256 of the DER
    not_after   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX service_certs_name ON service_certs(name);
