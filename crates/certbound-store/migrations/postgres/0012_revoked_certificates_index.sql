-- certbound store, version 12: the revoked certificates, found without reading
-- every certificate. Each enrollment and renewal refuses a CSR whose key
-- belongs to a revoked certificate, and the CRLs are built from them; without
-- an index both read the whole table (every row's DER), so issuance slowed
-- down as certificates accumulated (a 10 000-device renewal wave: 8 ms of
-- server CPU per certificate instead of under 5).
CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE status = 'revoked';
