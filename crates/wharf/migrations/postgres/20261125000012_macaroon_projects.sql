-- The projects a project-scoped token was made for, by id (a deleted project's name can be
-- taken again by someone else: the new project's pages must not list the old tokens). Filled
-- for existing tokens from their ProjectId caveats at start-up (`tokens::upgrade_stored`),
-- which also seals the root keys still stored in clear.
CREATE TABLE macaroon_projects (
    macaroon_id TEXT NOT NULL REFERENCES macaroons(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    PRIMARY KEY (macaroon_id, project_id)
);
CREATE INDEX macaroon_projects_project ON macaroon_projects(project_id);
