//! Event tags, `source:subject:action` as warehouse names them (`warehouse/events/tags.py`).
//! Tags marked "wharf" are ours, for what warehouse does not record.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventTag {
    AccountCreate,
    AccountLoginSuccess,
    AccountLoginFailure,
    /// wharf: the user signed out.
    AccountLogout,
    AccountReauthenticateFailure,
    AccountPasswordChange,
    AccountPasswordReset,
    AccountPasswordResetRequest,
    AccountPasswordResetAttempt,
    AccountEmailAdd,
    AccountEmailRemove,
    AccountEmailPrimaryChange,
    AccountEmailVerified,
    AccountEmailReverify,
    AccountEmailSent,
    /// wharf: the account was deleted (kept for admins).
    AccountDelete,
    AccountTwoFactorMethodAdded,
    AccountTwoFactorMethodRemoved,
    AccountRecoveryCodesGenerated,
    AccountRecoveryCodesRegenerated,
    AccountRecoveryCodesUsed,
    ProjectOwnersRequire2faEnabled,
    ProjectOwnersRequire2faDisabled,
    AccountApiTokenAdded,
    AccountApiTokenRemoved,
    /// wharf: a request presented one of the account's tokens and was refused.
    AccountApiTokenRemovedLeak,
    /// wharf: a token authenticated a request (the token's usage trail).
    AccountApiTokenUsed,
    AccountApiTokenFailure,
    /// wharf: an admin (or the command line) revoked the token in a bulk invalidation, with
    /// the reason the owner was e-mailed.
    AccountApiTokenInvalidated,
    /// wharf: the owner replaced the token with a new one of the same name and scope; the
    /// old one works for the grace period chosen, or was revoked at once.
    AccountApiTokenRotated,
    AccountRoleAdd,
    AccountRoleChange,
    AccountRoleRemove,
    AccountRoleInvite,
    AccountRoleDeclineInvite,
    AccountRoleRevokeInvite,
    /// wharf: an identity provider's subject was linked to the account (SSO sign-in).
    AccountSsoLinked,
    /// wharf: the account's user unlinked an identity provider.
    AccountSsoUnlinked,
    /// A pending trusted publisher was registered (it creates its project at its first
    /// exchange).
    AccountPendingOidcPublisherAdded,
    /// A pending trusted publisher was removed, or dropped when its name was taken.
    AccountPendingOidcPublisherRemoved,
    ProjectCreate,
    /// wharf: the project was deleted (kept for admins).
    ProjectRemove,
    ProjectRoleAdd,
    ProjectRoleChange,
    ProjectRoleRemove,
    ProjectRoleInvite,
    ProjectRoleDeclineInvite,
    ProjectRoleRevokeInvite,
    ProjectApiTokenAdded,
    ProjectApiTokenRemoved,
    /// A trusted publisher was registered for the project.
    ProjectOidcPublisherAdded,
    /// A trusted publisher was removed from the project.
    ProjectOidcPublisherRemoved,
    /// wharf: "Only trusted publishers may upload" was turned on (Warehouse#14300).
    ProjectTrustedPublishingOnlyEnabled,
    /// wharf: API tokens may upload again.
    ProjectTrustedPublishingOnlyDisabled,
    /// A trusted publisher exchanged an ID token for a 15-minute upload token; recorded on
    /// each of its projects under Warehouse's (sic) `account:` tag.
    ProjectShortLivedApiTokenAdded,
    ProjectReleaseAdd,
    ProjectReleaseRemove,
    ProjectReleaseYank,
    ProjectReleaseUnyank,
    FileAdd,
    FileRemove,
    /// wharf: the file came in through `wharf import` (with its source and original time).
    FileImport,
    /// wharf: an upload refused for lack of valid credentials, with no account to file it under.
    UploadAuthFailure,
    /// wharf: a read of a private index (`read_access = "users"`) was refused for a bad
    /// credential (a password, an unknown token), once per address and window.
    ReadAuthFailure,
    /// wharf: a request was refused by a rate limit (429).
    RateLimitRefused,
    /// wharf: an admin sent an invitation to register (`registration = "invite"`).
    RegistrationInvitationSent,
    /// wharf: an invitation was used to create an account.
    RegistrationInvitationAccepted,
    /// wharf: an invitation passed its 7 days unused.
    RegistrationInvitationExpired,
    /// wharf: an admin revoked an invitation (or sent a new one to the same address).
    RegistrationInvitationRevoked,
    /// wharf: an admin (or the command line) made the user an admin.
    AdminUserAdminGranted,
    /// wharf: an admin took the user's admin rights away.
    AdminUserAdminRevoked,
    /// wharf: an admin disabled the account (no sign-in, no tokens).
    AdminUserDisabled,
    /// wharf: an admin enabled the account again.
    AdminUserEnabled,
    /// wharf: an admin removed every second factor and recovery code of the user: the most
    /// sensitive admin action (`"sensitive": true` in its details).
    AdminUserTwoFactorReset,
    /// wharf: an admin deleted the project with its files.
    AdminProjectDelete,
    /// wharf: an admin made another user the project's only Owner.
    AdminProjectTransfer,
    /// wharf: an admin set or cleared the project's own upload size limit.
    AdminProjectUploadLimit,
    /// wharf: an admin claimed a name served from the upstream for a hosted project.
    AdminProjectClaim,
    /// wharf: an admin blocked an upstream project or one of its versions.
    AdminProxyBlock,
    /// wharf: an admin lifted a block of an upstream project or version.
    AdminProxyUnblock,
    /// wharf: a file the upstream sent did not match its page (hash, size) and was refused.
    ProxyFileRefused,
}

impl EventTag {
    pub const ALL: &'static [EventTag] = &[
        EventTag::AccountCreate,
        EventTag::AccountLoginSuccess,
        EventTag::AccountLoginFailure,
        EventTag::AccountLogout,
        EventTag::AccountReauthenticateFailure,
        EventTag::AccountPasswordChange,
        EventTag::AccountPasswordReset,
        EventTag::AccountPasswordResetRequest,
        EventTag::AccountPasswordResetAttempt,
        EventTag::AccountEmailAdd,
        EventTag::AccountEmailRemove,
        EventTag::AccountEmailPrimaryChange,
        EventTag::AccountEmailVerified,
        EventTag::AccountEmailReverify,
        EventTag::AccountEmailSent,
        EventTag::AccountDelete,
        EventTag::AccountTwoFactorMethodAdded,
        EventTag::AccountTwoFactorMethodRemoved,
        EventTag::AccountRecoveryCodesGenerated,
        EventTag::AccountRecoveryCodesRegenerated,
        EventTag::AccountRecoveryCodesUsed,
        EventTag::ProjectOwnersRequire2faEnabled,
        EventTag::ProjectOwnersRequire2faDisabled,
        EventTag::AccountApiTokenAdded,
        EventTag::AccountApiTokenRemoved,
        EventTag::AccountApiTokenRemovedLeak,
        EventTag::AccountApiTokenUsed,
        EventTag::AccountApiTokenFailure,
        EventTag::AccountApiTokenInvalidated,
        EventTag::AccountApiTokenRotated,
        EventTag::AccountRoleAdd,
        EventTag::AccountRoleChange,
        EventTag::AccountRoleRemove,
        EventTag::AccountRoleInvite,
        EventTag::AccountRoleDeclineInvite,
        EventTag::AccountRoleRevokeInvite,
        EventTag::AccountSsoLinked,
        EventTag::AccountSsoUnlinked,
        EventTag::AccountPendingOidcPublisherAdded,
        EventTag::AccountPendingOidcPublisherRemoved,
        EventTag::ProjectCreate,
        EventTag::ProjectRemove,
        EventTag::ProjectRoleAdd,
        EventTag::ProjectRoleChange,
        EventTag::ProjectRoleRemove,
        EventTag::ProjectRoleInvite,
        EventTag::ProjectRoleDeclineInvite,
        EventTag::ProjectRoleRevokeInvite,
        EventTag::ProjectApiTokenAdded,
        EventTag::ProjectApiTokenRemoved,
        EventTag::ProjectOidcPublisherAdded,
        EventTag::ProjectOidcPublisherRemoved,
        EventTag::ProjectTrustedPublishingOnlyEnabled,
        EventTag::ProjectTrustedPublishingOnlyDisabled,
        EventTag::ProjectShortLivedApiTokenAdded,
        EventTag::ProjectReleaseAdd,
        EventTag::ProjectReleaseRemove,
        EventTag::ProjectReleaseYank,
        EventTag::ProjectReleaseUnyank,
        EventTag::FileAdd,
        EventTag::FileRemove,
        EventTag::FileImport,
        EventTag::UploadAuthFailure,
        EventTag::ReadAuthFailure,
        EventTag::RateLimitRefused,
        EventTag::RegistrationInvitationSent,
        EventTag::RegistrationInvitationAccepted,
        EventTag::RegistrationInvitationExpired,
        EventTag::RegistrationInvitationRevoked,
        EventTag::AdminUserAdminGranted,
        EventTag::AdminUserAdminRevoked,
        EventTag::AdminUserDisabled,
        EventTag::AdminUserEnabled,
        EventTag::AdminUserTwoFactorReset,
        EventTag::AdminProjectDelete,
        EventTag::AdminProjectTransfer,
        EventTag::AdminProjectUploadLimit,
        EventTag::AdminProjectClaim,
        EventTag::AdminProxyBlock,
        EventTag::AdminProxyUnblock,
        EventTag::ProxyFileRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventTag::AccountCreate => "account:create",
            EventTag::AccountLoginSuccess => "account:login:success",
            EventTag::AccountLoginFailure => "account:login:failure",
            EventTag::AccountLogout => "account:logout",
            EventTag::AccountReauthenticateFailure => "account:reauthenticate:failure",
            EventTag::AccountPasswordChange => "account:password:change",
            EventTag::AccountPasswordReset => "account:password:reset",
            EventTag::AccountPasswordResetRequest => "account:password:reset:request",
            EventTag::AccountPasswordResetAttempt => "account:password:reset:attempt",
            EventTag::AccountEmailAdd => "account:email:add",
            EventTag::AccountEmailRemove => "account:email:remove",
            EventTag::AccountEmailPrimaryChange => "account:email:primary:change",
            EventTag::AccountEmailVerified => "account:email:verified",
            EventTag::AccountEmailReverify => "account:email:reverify",
            EventTag::AccountEmailSent => "account:email:sent",
            EventTag::AccountDelete => "account:delete",
            EventTag::AccountTwoFactorMethodAdded => "account:two_factor:method_added",
            EventTag::AccountTwoFactorMethodRemoved => "account:two_factor:method_removed",
            EventTag::AccountRecoveryCodesGenerated => "account:recovery_codes:generated",
            EventTag::AccountRecoveryCodesRegenerated => "account:recovery_codes:regenerated",
            EventTag::AccountRecoveryCodesUsed => "account:recovery_codes:used",
            EventTag::ProjectOwnersRequire2faEnabled => "project:owners_require_2fa:enabled",
            EventTag::ProjectOwnersRequire2faDisabled => "project:owners_require_2fa:disabled",
            EventTag::AccountApiTokenAdded => "account:api_token:added",
            EventTag::AccountApiTokenRemoved => "account:api_token:removed",
            EventTag::AccountApiTokenRemovedLeak => "account:api_token:removed_leak",
            EventTag::AccountApiTokenUsed => "account:api_token:used",
            EventTag::AccountApiTokenFailure => "account:api_token:failure",
            EventTag::AccountApiTokenInvalidated => "account:api_token:invalidated",
            EventTag::AccountApiTokenRotated => "account:api_token:rotated",
            EventTag::AccountRoleAdd => "account:role:add",
            EventTag::AccountRoleChange => "account:role:change",
            EventTag::AccountRoleRemove => "account:role:remove",
            EventTag::AccountRoleInvite => "account:role:invite",
            EventTag::AccountRoleDeclineInvite => "account:role:decline_invite",
            EventTag::AccountRoleRevokeInvite => "account:role:revoke_invite",
            EventTag::ProjectCreate => "project:create",
            EventTag::ProjectRemove => "project:remove",
            EventTag::ProjectRoleAdd => "project:role:add",
            EventTag::ProjectRoleChange => "project:role:change",
            EventTag::ProjectRoleRemove => "project:role:remove",
            EventTag::ProjectRoleInvite => "project:role:invite",
            EventTag::ProjectRoleDeclineInvite => "project:role:decline_invite",
            EventTag::ProjectRoleRevokeInvite => "project:role:revoke_invite",
            EventTag::ProjectApiTokenAdded => "project:api_token:added",
            EventTag::ProjectApiTokenRemoved => "project:api_token:removed",
            EventTag::AccountSsoLinked => "account:sso:linked",
            EventTag::AccountSsoUnlinked => "account:sso:unlinked",
            EventTag::AccountPendingOidcPublisherAdded => "account:oidc:pending-publisher-added",
            EventTag::AccountPendingOidcPublisherRemoved => {
                "account:oidc:pending-publisher-removed"
            }
            EventTag::ProjectOidcPublisherAdded => "project:oidc:publisher-added",
            EventTag::ProjectOidcPublisherRemoved => "project:oidc:publisher-removed",
            EventTag::ProjectTrustedPublishingOnlyEnabled => {
                "project:trusted_publishing_only:enabled"
            }
            EventTag::ProjectTrustedPublishingOnlyDisabled => {
                "project:trusted_publishing_only:disabled"
            }
            EventTag::ProjectShortLivedApiTokenAdded => "account:short_lived_api_token:added",
            EventTag::ProjectReleaseAdd => "project:release:add",
            EventTag::ProjectReleaseRemove => "project:release:remove",
            EventTag::ProjectReleaseYank => "project:release:yank",
            EventTag::ProjectReleaseUnyank => "project:release:unyank",
            EventTag::FileAdd => "file:add",
            EventTag::FileRemove => "file:remove",
            EventTag::FileImport => "file:import",
            EventTag::UploadAuthFailure => "upload:auth:failure",
            EventTag::ReadAuthFailure => "read:auth:failure",
            EventTag::RateLimitRefused => "ratelimit:refused",
            EventTag::RegistrationInvitationSent => "registration:invitation:sent",
            EventTag::RegistrationInvitationAccepted => "registration:invitation:accepted",
            EventTag::RegistrationInvitationExpired => "registration:invitation:expired",
            EventTag::RegistrationInvitationRevoked => "registration:invitation:revoked",
            EventTag::AdminUserAdminGranted => "admin:user:admin_granted",
            EventTag::AdminUserAdminRevoked => "admin:user:admin_revoked",
            EventTag::AdminUserDisabled => "admin:user:disabled",
            EventTag::AdminUserEnabled => "admin:user:enabled",
            EventTag::AdminUserTwoFactorReset => "admin:user:two_factor_reset",
            EventTag::AdminProjectDelete => "admin:project:delete",
            EventTag::AdminProjectTransfer => "admin:project:transfer",
            EventTag::AdminProjectUploadLimit => "admin:project:upload_limit",
            EventTag::AdminProjectClaim => "admin:project:claim",
            EventTag::AdminProxyBlock => "admin:proxy:block",
            EventTag::AdminProxyUnblock => "admin:proxy:unblock",
            EventTag::ProxyFileRefused => "proxy:file:refused",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for tag in EventTag::ALL {
            let s = tag.as_str();
            assert!(seen.insert(s), "duplicate tag {s}");
            assert!(s.split(':').count() >= 2 && !s.contains(' '), "{s}");
        }
    }
}
