-- Google Cloud service accounts and the generic issuers an admin registers can publish too:
-- oidc_publishers takes two more kinds and a `claims` column (for google, '' or
-- {"sub": …}; for generic, the JSON object of the claims that identify the publisher, keys
-- sorted). The owner id joins the identity: a registration never pins another project's row.
-- (SQLite rebuilds the table; here it is altered.)
ALTER TABLE oidc_publishers DROP CONSTRAINT oidc_publishers_kind_check;
ALTER TABLE oidc_publishers ADD CONSTRAINT oidc_publishers_kind_check
    CHECK (kind IN ('github', 'gitlab', 'google', 'generic'));
ALTER TABLE oidc_publishers ADD COLUMN claims TEXT NOT NULL DEFAULT '';
DROP INDEX oidc_publishers_identity;
CREATE UNIQUE INDEX oidc_publishers_identity
    ON oidc_publishers(kind, issuer, owner, repository, workflow, environment, claims, COALESCE(owner_id, ''));

-- A minted token may upload to the projects of every publisher the exchange's claims
-- satisfied (their ids, comma-separated, beside publisher_id): another project's registration of
-- the same workflow cannot shadow this one's.
ALTER TABLE oidc_tokens ADD COLUMN also_publishers TEXT NOT NULL DEFAULT '';
