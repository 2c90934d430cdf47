-- no-transaction
-- Google Cloud service accounts and the generic issuers an admin registers can publish too:
-- oidc_publishers takes two more kinds and a `claims` column (for google, '' or
-- {"sub": …}; for generic, the JSON object of the claims that identify the publisher, keys
-- sorted). SQLite cannot widen a CHECK in place: the table is rebuilt (SQLite's documented
-- twelve steps), with foreign keys off so that dropping the old table deletes no link or
-- token, and back on after; PostgreSQL alters it.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE oidc_publishers_new (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('github', 'gitlab', 'google', 'generic')),
    issuer TEXT NOT NULL,
    owner TEXT NOT NULL,
    repository TEXT NOT NULL,
    workflow TEXT NOT NULL,
    environment TEXT NOT NULL DEFAULT '',
    owner_id TEXT,
    created BIGINT NOT NULL,
    claims TEXT NOT NULL DEFAULT ''
);
INSERT INTO oidc_publishers_new (id, kind, issuer, owner, repository, workflow, environment, owner_id, created)
    SELECT id, kind, issuer, owner, repository, workflow, environment, owner_id, created FROM oidc_publishers;
DROP TABLE oidc_publishers;
ALTER TABLE oidc_publishers_new RENAME TO oidc_publishers;
CREATE UNIQUE INDEX oidc_publishers_identity
    ON oidc_publishers(kind, issuer, owner, repository, workflow, environment, claims);
PRAGMA foreign_key_check;
COMMIT;
PRAGMA foreign_keys = ON;
