-- The audit log's integrity: each event, once sealed, carries its place in the chain (seq), the
-- previous event's hash and its own hash (SHA-256 of its content and the previous hash).
-- Events are written unsealed by requests and sealed in order by one process at a time.
ALTER TABLE events ADD COLUMN seq BIGINT;
ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX events_seq ON events(seq);

-- Where a pruned log's chain now starts: the last pruned event's place and hash, signed with
-- the server key, so that verification can start there and still notice tampering.
CREATE TABLE audit_checkpoints (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    pruned_before BIGINT NOT NULL,
    created BIGINT NOT NULL,
    signature TEXT NOT NULL
);
