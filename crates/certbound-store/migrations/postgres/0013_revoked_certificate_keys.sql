-- certbound store, version 13: the public key of each certificate (SEC1
-- point), indexed among the revoked ones. Each enrollment and renewal refuses
-- a CSR whose key belongs to a revoked certificate; it read and parsed every
-- revoked certificate to find out, so it slowed down as revocations
-- accumulated (renewals revoke the certificates they replace: 1.6 ms of
-- database time per renewal with 10 000 revoked). Rows written before this
-- version have no key recorded; the check parses those (and only those).
ALTER TABLE certificates ADD COLUMN public_key BYTEA;
CREATE INDEX certificates_revoked_key ON certificates (public_key) WHERE status = 'revoked';
