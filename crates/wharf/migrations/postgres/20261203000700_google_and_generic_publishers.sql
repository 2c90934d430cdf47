-- Google Cloud service accounts and the generic issuers an admin registers can publish too:
-- oidc_publishers takes two more kinds and a `claims` column (for google, '' or
-- {"sub": …}; for generic, the JSON object of the claims that identify the publisher, keys
-- sorted). (SQLite rebuilds the table; here it is altered.)
ALTER TABLE oidc_publishers DROP CONSTRAINT oidc_publishers_kind_check;
ALTER TABLE oidc_publishers ADD CONSTRAINT oidc_publishers_kind_check
    CHECK (kind IN ('github', 'gitlab', 'google', 'generic'));
ALTER TABLE oidc_publishers ADD COLUMN claims TEXT NOT NULL DEFAULT '';
DROP INDEX oidc_publishers_identity;
CREATE UNIQUE INDEX oidc_publishers_identity
    ON oidc_publishers(kind, issuer, owner, repository, workflow, environment, claims);
