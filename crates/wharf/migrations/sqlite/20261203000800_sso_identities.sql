-- Sign-in through the organization's OpenID Connect providers: a provider's subject (`sub`)
-- is tied to one account, and an account to at most one subject per provider. The issuer is
-- kept: a provider's name pointed at another issuer later finds none of its old subjects.
CREATE TABLE sso_identities (
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email TEXT NOT NULL DEFAULT '',
    issuer TEXT NOT NULL DEFAULT '',
    created BIGINT NOT NULL,
    last_used BIGINT,
    PRIMARY KEY (provider, subject)
);
CREATE UNIQUE INDEX sso_identities_user ON sso_identities(user_id, provider);
