-- Blobs of deleted files, queued in the deleting transaction and removed from storage after it
-- commits (by the serving processes, or by `wharf gc`), so a crash cannot forget one.
CREATE TABLE blob_deletions (
    path TEXT PRIMARY KEY,
    queued_at BIGINT NOT NULL
);
