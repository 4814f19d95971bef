-- certbound store, version 13: the public key of each certificate (SEC1
-- point), indexed among the revoked ones. Each enrollment and renewal refuses
-- a CSR whose key belongs to a revoked certificate; it read every revoked
-- certificate, DER included, and parsed each to find out, so every enrollment
-- and renewal cost more as revocations accumulated. Rows written before this
-- version have no key recorded; the check parses those (and only those).
ALTER TABLE certificates ADD COLUMN public_key BYTEA;
CREATE INDEX certificates_revoked_key ON certificates (public_key) WHERE status = 'revoked';
