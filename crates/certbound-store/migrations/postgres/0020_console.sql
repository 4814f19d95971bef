-- certbound store, version 20: the operator console.
--
-- Console sessions and one-time login links live in the store, so every
-- instance on one PostgreSQL store knows them. Only SHA-256 hashes of the
-- cookie value and of the link token are kept: a copy of the database does
-- not sign anybody in.
CREATE TABLE ui_sessions (
    id_hash     TEXT PRIMARY KEY,      -- lowercase hex SHA-256 of the cookie value
    actor       TEXT NOT NULL,         -- admin-client:<client_id> or ui-login:<label>
    scopes      TEXT NOT NULL,         -- space separated: admin:read admin:write
    csrf_token  TEXT NOT NULL,         -- sent back in X-CSRF-Token (useless without the cookie)
    created_at  BIGINT NOT NULL,      -- Unix seconds
    last_seen   BIGINT NOT NULL,      -- Unix seconds (idle timeout slides from here)
    expires_at  BIGINT NOT NULL       -- absolute end, Unix seconds
);
CREATE INDEX ui_sessions_expires ON ui_sessions(expires_at);

CREATE TABLE ui_login_tokens (
    token_hash  TEXT PRIMARY KEY,      -- lowercase hex SHA-256 of the token
    label       TEXT NOT NULL,         -- who asked (`certbound ui-login --label`)
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT                 -- NULL until consumed (single use)
);

-- Every running instance writes a heartbeat (the dashboard's instance list).
CREATE TABLE instance_heartbeats (
    id          TEXT PRIMARY KEY,      -- the instance's HTTPS base URL
    started_at  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
);

-- The dashboard's audit queries (events of one action in a time range). It
-- grows at the end (ts increases), so each audit batch dirties few of its
-- pages; lookups by device use the existing audit_events_subject.
CREATE INDEX audit_events_action_ts ON audit_events(action, ts);
-- Devices by status (dashboard) without reading every row; the search's status filter.
CREATE INDEX devices_status ON devices(status);
CREATE INDEX certificates_active_not_after ON certificates(not_after) WHERE status = 'active';
