-- Two-factor authentication: TOTP, WebAuthn credentials (security keys and passkeys), recovery
-- codes, WebAuthn ceremonies in progress, and the per-project "Owners and Maintainers must use
-- 2FA" flag.

-- TOTP secrets are encrypted with a key derived from the server key (AES-256-GCM, nonce first).
ALTER TABLE users ADD COLUMN totp_secret BYTEA;
-- A secret being set up, until the user proves it with a code.
ALTER TABLE users ADD COLUMN totp_pending_secret BYTEA;
-- The last accepted time step: a code is accepted once, and never an older one.
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

CREATE TABLE webauthn_credentials (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- 'security_key' (second factor) or 'passkey' (signs in alone).
    kind TEXT NOT NULL CHECK (kind IN ('security_key', 'passkey')),
    label TEXT NOT NULL,
    -- base64url of the credential id: how an assertion finds its credential.
    credential_id TEXT NOT NULL UNIQUE,
    -- The credential as webauthn-rs serialises it (public key, counter, ...).
    credential TEXT NOT NULL,
    created BIGINT NOT NULL,
    last_used BIGINT,
    UNIQUE (user_id, label)
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials(user_id);

CREATE TABLE recovery_codes (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    generated BIGINT NOT NULL,
    burned BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);

-- A WebAuthn ceremony between its options and its answer. Looked up by the hash of a random
-- id the browser holds; expires with the 2FA step.
CREATE TABLE webauthn_ceremonies (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT,
    purpose TEXT NOT NULL,
    state TEXT NOT NULL,
    expires BIGINT NOT NULL
);

ALTER TABLE projects ADD COLUMN owners_require_2fa BIGINT NOT NULL DEFAULT 0;
