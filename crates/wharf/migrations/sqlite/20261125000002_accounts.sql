-- Accounts and the web UI: sessions, rate-limit counters, role invitations.

-- Server-side sessions. The cookie holds a random id; only its SHA-256 is stored, so a copy of
-- the database cannot be used to take over a session.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    -- users.password_date when the session began: a password change ends older sessions.
    password_date BIGINT NOT NULL,
    -- When the password was last entered in this session (re-authentication).
    reauth_at BIGINT NOT NULL,
    ip_address TEXT,
    user_agent TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);

-- One row per counted attempt; a limiter counts the rows inside its moving window.
CREATE TABLE rate_limit_hits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX rate_limit_hits_key ON rate_limit_hits(bucket, key, at);

CREATE TABLE role_invitations (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_name TEXT NOT NULL CHECK (role_name IN ('Owner', 'Maintainer')),
    invited_by TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    UNIQUE (project_id, user_id)
);
CREATE INDEX role_invitations_user ON role_invitations(user_id);
