-- certbound store, version 9: several instances, each with its own keys.
--
-- Every instance signs tokens with its own key and issues certificates with
-- its own issuing CA under the service's one root; no private key is shared.
-- The store holds what the others need to know: each signing key's public
-- key (every instance publishes every live instance's keys in its JWKS and
-- COSE key set), every instance's issuing CA certificate (every instance
-- trusts the certificates every other one issued), and the settings that
-- make them one service (issuer id, root certificate).
ALTER TABLE signing_keys ADD COLUMN public_key BLOB;  -- SEC1 uncompressed P-256 point; NULL: recorded by an older version, filled in by the instance holding the key

CREATE TABLE service_settings (
    name   TEXT PRIMARY KEY,   -- issuer_id, root_ca_pem
    value  TEXT NOT NULL
);

CREATE TABLE issuing_cas (
    serial      TEXT PRIMARY KEY,   -- lowercase hex
    cert_der    BLOB NOT NULL,      -- signed by the service's root
    not_after   INTEGER NOT NULL,   -- Unix seconds
    added_at    INTEGER NOT NULL
);
