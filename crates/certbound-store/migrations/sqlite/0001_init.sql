-- certbound store, version 1.
CREATE TABLE apis (
    id          TEXT PRIMARY KEY,            -- the API identifier (URI), used as aud
    format      TEXT NOT NULL DEFAULT 'cwt', -- token format: cwt | jwt
    ttl_secs    INTEGER NOT NULL,            -- token lifetime
    scopes      TEXT NOT NULL DEFAULT '',    -- the API's permissions, space separated
    created_at  INTEGER NOT NULL
);

CREATE TABLE groups (
    name        TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

CREATE TABLE grants (
    group_name  TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
    api_id      TEXT NOT NULL REFERENCES apis(id) ON DELETE CASCADE,
    scopes      TEXT NOT NULL,               -- space separated; may contain {device}
    PRIMARY KEY (group_name, api_id)
);

CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'revoked')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE device_groups (
    device_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    group_name  TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
    PRIMARY KEY (device_id, group_name)
);

CREATE TABLE certificates (
    serial      TEXT PRIMARY KEY,            -- lowercase hex
    device_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    thumbprint  TEXT NOT NULL UNIQUE,        -- lowercase hex SHA-256 of the DER
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    der         BLOB NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    revoked_at  INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX certificates_device ON certificates(device_id);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts          INTEGER NOT NULL,            -- Unix milliseconds
    actor       TEXT NOT NULL,               -- who: "cli", "device:<id>", "broker"
    action      TEXT NOT NULL,               -- what: "token.issued", "device.revoked", ...
    subject     TEXT NOT NULL,               -- on what: device id, API id, ...
    outcome     TEXT NOT NULL,               -- "ok" or the error code
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_subject ON audit_events(subject);
