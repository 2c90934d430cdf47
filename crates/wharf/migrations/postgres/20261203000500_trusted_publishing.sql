-- Trusted publishing (PyPI's protocol): the CI workflows that may publish a project, the
-- short-lived upload tokens they are given, and the ID tokens already exchanged.

-- A publisher: one CI identity, shared by the projects it is registered for.
--   github: owner, repository, workflow = the workflow's file name, owner_id = the numeric
--           repository_owner_id (pinned at registration when known, else at the first mint);
--   gitlab: owner = the namespace, repository = the project, workflow = the CI config path.
-- environment is '' when any (or no) deployment environment may publish.
CREATE TABLE oidc_publishers (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('github', 'gitlab')),
    issuer TEXT NOT NULL,
    owner TEXT NOT NULL,
    repository TEXT NOT NULL,
    workflow TEXT NOT NULL,
    environment TEXT NOT NULL DEFAULT '',
    owner_id TEXT,
    created BIGINT NOT NULL
);
CREATE UNIQUE INDEX oidc_publishers_identity
    ON oidc_publishers(kind, issuer, owner, repository, workflow, environment);

CREATE TABLE oidc_publisher_projects (
    publisher_id TEXT NOT NULL REFERENCES oidc_publishers(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    added_by TEXT,
    created BIGINT NOT NULL,
    PRIMARY KEY (publisher_id, project_id)
);
CREATE INDEX oidc_publisher_projects_project ON oidc_publisher_projects(project_id);

-- The upload tokens minted for publishers: never listed, valid 15 minutes (their Expiration
-- caveat), the rows swept a day after they expire. claims: what the file events record of
-- the CI run (ref, sha, run id).
CREATE TABLE oidc_tokens (
    id TEXT PRIMARY KEY,
    publisher_id TEXT NOT NULL REFERENCES oidc_publishers(id) ON DELETE CASCADE,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    caveats TEXT NOT NULL,
    claims TEXT NOT NULL,
    key BYTEA NOT NULL
);
CREATE INDEX oidc_tokens_publisher ON oidc_tokens(publisher_id);
CREATE INDEX oidc_tokens_expires ON oidc_tokens(expires);

-- Each ID token is accepted once: its jti is kept until after it expires, so that every
-- process refuses a replay.
CREATE TABLE oidc_jwt_ids (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX oidc_jwt_ids_expires ON oidc_jwt_ids(expires);
