-- certbound store, version 3: provisioning claims (first-boot enrollment of
-- devices that hold a batch claim certificate instead of their own).
CREATE TABLE claims (
    id          TEXT PRIMARY KEY,            -- the claim id (SAN urn:certbound:claim:<id>)
    group_name  TEXT NOT NULL REFERENCES groups(name),
    uses_total  BIGINT NOT NULL,
    uses_left   BIGINT NOT NULL CHECK (uses_left >= 0),
    expires_at  BIGINT NOT NULL,
    id_pattern  TEXT,                        -- glob with '*' the device ids must match; NULL: any
    allowlist   TEXT,                        -- newline-separated device ids; NULL: no list
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
