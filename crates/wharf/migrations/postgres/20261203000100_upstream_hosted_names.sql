-- A name that has been hosted here is never the upstream's, even once its project is deleted:
-- each new project marks its name in the transaction that creates it. Projects that exist
-- already are marked now (names of projects deleted before this cannot be told apart here:
-- the journal keeps display names, not normalised ones).
ALTER TABLE upstream_projects ADD COLUMN hosted BIGINT;
UPDATE upstream_projects SET hosted = 0, page = NULL, etag = NULL, last_modified = NULL
WHERE normalized_name IN (SELECT normalized_name FROM projects);
INSERT INTO upstream_projects (normalized_name, page, fetched, first_served, hosted)
SELECT normalized_name, NULL, 0, 0, 0 FROM projects WHERE true
ON CONFLICT (normalized_name) DO NOTHING;
