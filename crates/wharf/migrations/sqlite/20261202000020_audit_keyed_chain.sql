-- The audit chain is keyed from here on (HMAC-SHA256 under a key derived from the server key,
-- see src/events/chain.rs): whoever can write to the database can no longer recompute it.
--
-- Events sealed before this migration were hashed without a key. They are not rewritten
-- (re-hashing a long log at upgrade would hold the write lock for minutes, and their hashes may
-- already sit in exports and logs elsewhere); instead the place where the unkeyed part ends is
-- recorded here, and the first seal after the migration signs that place and its hash with the
-- server key. The unkeyed part can then not be rewritten either: any change to it changes the
-- hash at its end, which is signed. One row, always.
CREATE TABLE audit_chain_keyed (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    after_seq BIGINT NOT NULL,
    hash TEXT,
    signature TEXT
);
INSERT INTO audit_chain_keyed (id, after_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM events;

-- The newest signed head of the chain (its last event's place and hash, and when), written by
-- the sealer at an interval next to the log output and a head file in the data directory.
-- `wharf audit verify` checks that the chain still reaches it, so removing the newest events
-- is noticed. One row, shared by every process of a scale-out deployment.
CREATE TABLE audit_heads (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    time BIGINT NOT NULL,
    signature TEXT NOT NULL
);
