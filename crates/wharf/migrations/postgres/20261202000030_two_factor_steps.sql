-- The two-factor steps that have signed someone in: a step's signed cookie works once, in
-- every process. Rows are kept until the cookie would have expired anyway.
CREATE TABLE two_factor_steps_used (
    nonce TEXT PRIMARY KEY,
    expires BIGINT NOT NULL
);
CREATE INDEX two_factor_steps_used_expires ON two_factor_steps_used(expires);
