-- Read-only API tokens: chosen at creation, kept in the row (the server's word, not a caveat
-- the holder could leave off), so such a token can read the index and never upload.
ALTER TABLE macaroons ADD COLUMN read_only BIGINT NOT NULL DEFAULT 0;
