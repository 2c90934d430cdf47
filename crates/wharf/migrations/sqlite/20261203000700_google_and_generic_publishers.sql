-- no-transaction
-- Google Cloud service accounts and the generic issuers an admin registers can publish too:
-- oidc_publishers takes two more kinds and a `claims` column (for google, '' or
-- {"sub": …}; for generic, the JSON object of the claims that identify the publisher, keys
-- sorted). The owner id joins the identity: a registration never pins another project's row.
-- SQLite cannot widen a CHECK in place: the table is rebuilt (SQLite's documented
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
    ON oidc_publishers(kind, issuer, owner, repository, workflow, environment, claims, COALESCE(owner_id, ''));
-- No link or token may point at nothing: the CHECK fails the migration if one does.
CREATE TEMP TABLE oidc_rebuild_check (dangling INTEGER NOT NULL CHECK (dangling = 0));
INSERT INTO oidc_rebuild_check SELECT COUNT(*) FROM pragma_foreign_key_check;
DROP TABLE oidc_rebuild_check;
-- A minted token may upload to the projects of every publisher the exchange's claims
-- satisfied (their ids, comma-separated, beside publisher_id): another project's registration of
-- the same workflow cannot shadow this one's.
ALTER TABLE oidc_tokens ADD COLUMN also_publishers TEXT NOT NULL DEFAULT '';
COMMIT;
PRAGMA foreign_keys = ON;
