-- certbound store, version 11: partner CAs (`certbound ca trust add`) in the
-- store, so every instance of a service trusts the same ones. They were
-- files under each data directory's pki/external/; an instance imports such
-- files once when it opens the registry.
CREATE TABLE external_cas (
    name        TEXT PRIMARY KEY,   -- the operator's name for the CA
    cert_der    BYTEA NOT NULL,     -- the CA certificate
    jit_group   TEXT,               -- group its devices join on first use; NULL: just-in-time registration off
    added_at    BIGINT NOT NULL     -- Unix seconds
);
