-- certbound store, version 14: signing algorithms per API.
--
-- An API may ask for RS256, PS256 or EdDSA JWTs instead of ES256 (NULL: the
-- default, ES256; CWT APIs are always ES256). Each signing key records the
-- algorithm it signs; keys recorded before this version are ES256 keys.
ALTER TABLE apis ADD COLUMN signing_alg TEXT;
ALTER TABLE signing_keys ADD COLUMN alg TEXT NOT NULL DEFAULT 'ES256';
