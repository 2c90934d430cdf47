-- The package index: accounts, projects, releases, files, tokens, the journal and events.
-- Times are unix microseconds (BIGINT), flags are 0/1 BIGINTs, ids are UUID text: the types
-- sqlx's Any driver carries on both backends.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    password_date BIGINT NOT NULL,
    is_admin BIGINT NOT NULL DEFAULT 0,
    is_active BIGINT NOT NULL DEFAULT 1,
    created BIGINT NOT NULL,
    last_login BIGINT
);

CREATE TABLE user_emails (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE,
    is_primary BIGINT NOT NULL DEFAULT 0,
    verified BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL
);
CREATE INDEX user_emails_user ON user_emails(user_id);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    normalized_name TEXT NOT NULL UNIQUE,
    ultranormalized_name TEXT NOT NULL,
    created BIGINT NOT NULL,
    last_serial BIGINT NOT NULL DEFAULT 0,
    upload_limit BIGINT,
    total_size BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX projects_ultranormalized ON projects(ultranormalized_name);

CREATE TABLE roles (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_name TEXT NOT NULL CHECK (role_name IN ('Owner', 'Maintainer')),
    created BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX roles_user ON roles(user_id);

CREATE TABLE releases (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    canonical_version TEXT NOT NULL,
    is_prerelease BIGINT NOT NULL,
    created BIGINT NOT NULL,
    summary TEXT,
    requires_python TEXT,
    metadata TEXT NOT NULL,
    yanked BIGINT NOT NULL DEFAULT 0,
    yanked_reason TEXT NOT NULL DEFAULT '',
    yanked_date BIGINT,
    uploader_id TEXT,
    UNIQUE (project_id, canonical_version)
);

CREATE TABLE files (
    id TEXT PRIMARY KEY,
    release_id TEXT NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    filename TEXT NOT NULL UNIQUE,
    packagetype TEXT NOT NULL,
    python_version TEXT NOT NULL,
    comment_text TEXT,
    size BIGINT NOT NULL,
    md5_digest TEXT NOT NULL,
    sha256_digest TEXT NOT NULL,
    blake2_256_digest TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    upload_time BIGINT NOT NULL,
    metadata_sha256 TEXT,
    metadata_blake2_256 TEXT,
    uploaded_via TEXT
);
CREATE INDEX files_release ON files(release_id);
CREATE INDEX files_project ON files(project_id);

-- Every filename ever uploaded, so a deleted file's name can never be reused.
CREATE TABLE file_registry (
    filename TEXT PRIMARY KEY
);

-- The journal: its ids are the serials of PyPI's mirroring protocol.
CREATE TABLE journals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version TEXT,
    action TEXT NOT NULL,
    submitted_date BIGINT NOT NULL,
    submitted_by TEXT
);
CREATE INDEX journals_name ON journals(name);

CREATE TABLE macaroons (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    description TEXT NOT NULL,
    created BIGINT NOT NULL,
    last_used BIGINT,
    expires BIGINT,
    caveats TEXT NOT NULL,
    permissions_caveat TEXT NOT NULL,
    additional TEXT NOT NULL DEFAULT '{}',
    key BLOB NOT NULL,
    UNIQUE (user_id, description)
);

-- The audit log: one table for user, project and file events (source_type).
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_type TEXT NOT NULL,
    source_id TEXT,
    tag TEXT NOT NULL,
    time BIGINT NOT NULL,
    ip_address TEXT,
    user_agent TEXT,
    additional TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_source ON events(source_type, source_id, time);
CREATE INDEX events_tag ON events(tag, time);
