-- The proxy of an upstream index (`upstream_url`). A name is hosted or proxied, never both:
-- a row here means the name has been served from the upstream (page kept for stale-if-error
-- and for other processes), or an admin has claimed it for a hosted project.
CREATE TABLE upstream_projects (
    normalized_name TEXT PRIMARY KEY,
    -- The upstream page as wharf parsed it (JSON), NULL once claimed.
    page TEXT,
    etag TEXT,
    last_modified TEXT,
    -- When the upstream last answered for it (a page or 304).
    fetched BIGINT NOT NULL,
    first_served BIGINT NOT NULL,
    claimed_by TEXT,
    claimed BIGINT
);
-- What admins have blocked from the upstream: a whole project (version '') or one version.
CREATE TABLE upstream_blocks (
    id TEXT PRIMARY KEY,
    normalized_name TEXT NOT NULL,
    version TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE UNIQUE INDEX upstream_blocks_target ON upstream_blocks(normalized_name, version);
