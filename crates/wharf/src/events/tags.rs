//! Event tags, `source:subject:action` as warehouse names them (`warehouse/events/tags.py`).
//! Tags marked "wharf" are ours, for what warehouse does not record.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventTag {
    AccountCreate,
    AccountApiTokenAdded,
    AccountApiTokenRemoved,
    /// wharf: a request presented one of the account's tokens and was refused.
    AccountApiTokenFailure,
    AccountRoleAdd,
    ProjectCreate,
    ProjectRoleAdd,
    ProjectApiTokenAdded,
    ProjectApiTokenRemoved,
    ProjectReleaseAdd,
    FileAdd,
    /// wharf: an upload refused for lack of valid credentials, with no account to file it under.
    UploadAuthFailure,
}

impl EventTag {
    pub const ALL: &'static [EventTag] = &[
        EventTag::AccountCreate,
        EventTag::AccountApiTokenAdded,
        EventTag::AccountApiTokenRemoved,
        EventTag::AccountApiTokenFailure,
        EventTag::AccountRoleAdd,
        EventTag::ProjectCreate,
        EventTag::ProjectRoleAdd,
        EventTag::ProjectApiTokenAdded,
        EventTag::ProjectApiTokenRemoved,
        EventTag::ProjectReleaseAdd,
        EventTag::FileAdd,
        EventTag::UploadAuthFailure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventTag::AccountCreate => "account:create",
            EventTag::AccountApiTokenAdded => "account:api_token:added",
            EventTag::AccountApiTokenRemoved => "account:api_token:removed",
            EventTag::AccountApiTokenFailure => "account:api_token:failure",
            EventTag::AccountRoleAdd => "account:role:add",
            EventTag::ProjectCreate => "project:create",
            EventTag::ProjectRoleAdd => "project:role:add",
            EventTag::ProjectApiTokenAdded => "project:api_token:added",
            EventTag::ProjectApiTokenRemoved => "project:api_token:removed",
            EventTag::ProjectReleaseAdd => "project:release:add",
            EventTag::FileAdd => "file:add",
            EventTag::UploadAuthFailure => "upload:auth:failure",
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
