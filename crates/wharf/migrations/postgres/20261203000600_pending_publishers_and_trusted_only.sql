-- Pending publishers: a CI identity a user registers for a project name that does not exist
-- yet. Its first exchange creates the project with that user as Owner and turns it into an
-- ordinary publisher (oidc_publishers); the other pending publishers of the name are dropped.
-- One CI identity is pending for one name at most, so that a token names one project.
CREATE TABLE oidc_pending_publishers (
    id TEXT PRIMARY KEY,
    project_name TEXT NOT NULL,
    normalized_name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('github', 'gitlab', 'google', 'generic')),
    issuer TEXT NOT NULL,
    owner TEXT NOT NULL,
    repository TEXT NOT NULL,
    workflow TEXT NOT NULL,
    environment TEXT NOT NULL DEFAULT '',
    owner_id TEXT,
    claims TEXT NOT NULL DEFAULT '',
    added_by TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created BIGINT NOT NULL
);
CREATE UNIQUE INDEX oidc_pending_publishers_identity
    ON oidc_pending_publishers(kind, issuer, owner, repository, workflow, environment, claims);
CREATE INDEX oidc_pending_publishers_name ON oidc_pending_publishers(normalized_name);
CREATE INDEX oidc_pending_publishers_added_by ON oidc_pending_publishers(added_by);

-- "Only trusted publishers may upload": API-token uploads to the project are refused.
ALTER TABLE projects ADD COLUMN trusted_publishing_only BIGINT NOT NULL DEFAULT 0;
