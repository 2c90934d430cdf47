-- API tokens: whether the owner was told the token expires within a week.
ALTER TABLE macaroons ADD COLUMN expiry_notified BIGINT NOT NULL DEFAULT 0;
CREATE INDEX macaroons_expires ON macaroons(expires);

-- Deleted tokens keep their key for a while, so that a later use of one (a leaked copy, a CI
-- job nobody updated) can be proven genuine and shown to its owner as a failed use.
CREATE TABLE deleted_macaroons (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    description TEXT NOT NULL,
    key BLOB NOT NULL,
    deleted BIGINT NOT NULL
);
CREATE INDEX deleted_macaroons_user ON deleted_macaroons(user_id);

-- Every token deletion, in order: processes that keep tokens in memory poll it to drop them.
CREATE TABLE token_revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    macaroon_id TEXT NOT NULL,
    at BIGINT NOT NULL
);
