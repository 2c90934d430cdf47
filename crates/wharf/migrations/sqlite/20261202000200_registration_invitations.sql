-- Invitations to register (`registration = "invite"`): the e-mailed link is signed and names
-- its row, which makes it single-use (status leaves 'pending' once) and revocable.
CREATE TABLE registration_invitations (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    invited_by TEXT,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'revoked', 'expired')),
    accepted_by TEXT,
    finished BIGINT
);
CREATE INDEX registration_invitations_pending ON registration_invitations(status, expires);
CREATE INDEX registration_invitations_email ON registration_invitations(email_key);
