//! Who may do what on a project: one decision for every project page and for uploads
//! (Warehouse's project ACL plus its two-factor check; crates.io's `Rights`). Handlers ask
//! [`authorize`] and only turn a [`Denied`] into an answer (404, 403, the re-authentication
//! page); none of them decides on its own.
//!
//! The rules, in the order they are checked (so nobody is asked for a password, or told to
//! set up 2FA, for something they could not do anyway):
//! 1. the user's role: Owners may do everything, Maintainers only upload (PyPI's roles);
//!    administrators may read a project's security history without a role;
//! 2. two factors: where the index or the project requires them, the user must have 2FA;
//! 3. freshness: every destructive or security-relevant action, and the pages that hold its
//!    forms, need the password entered within `reauth_secs`.

use super::{Project, Role};
use crate::accounts::User;
use crate::db::Db;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Upload a file (also: scope an API token to the project).
    Upload,
    /// The management list of the project's releases.
    ViewReleases,
    /// A release's page, yank, un-yank, delete a release or a file.
    ManageReleases,
    /// See, invite, change and remove collaborators.
    ManageCollaborators,
    /// The settings page and the two-factor requirement.
    ManageSettings,
    DeleteProject,
    ViewHistory,
    /// The tokens that can upload to the project.
    ViewTokens,
    /// The trusted publishers, and whether only they may upload.
    ManagePublishing,
}

impl Permission {
    pub const ALL: [Permission; 9] = [
        Permission::Upload,
        Permission::ViewReleases,
        Permission::ManageReleases,
        Permission::ManageCollaborators,
        Permission::ManageSettings,
        Permission::DeleteProject,
        Permission::ViewHistory,
        Permission::ViewTokens,
        Permission::ManagePublishing,
    ];

    /// The role needed; Owners hold every permission.
    fn role(self) -> Role {
        match self {
            Permission::Upload => Role::Maintainer,
            _ => Role::Owner,
        }
    }

    /// Administrators read any project's security history (to investigate), nothing else:
    /// they act on projects from the admin pages.
    fn for_admins(self) -> bool {
        matches!(self, Permission::ViewHistory)
    }

    /// Whether a session must have entered the password within `reauth_secs`.
    pub fn needs_recent_auth(self) -> bool {
        matches!(
            self,
            Permission::ManageReleases
                | Permission::ManageCollaborators
                | Permission::ManageSettings
                | Permission::DeleteProject
                | Permission::ViewTokens
                | Permission::ManagePublishing
        )
    }

    /// What the permission lets one do, to finish "… cannot {}" messages.
    pub fn describe(self) -> &'static str {
        match self {
            Permission::Upload => "upload to it",
            Permission::ViewReleases | Permission::ManageReleases => "manage its releases",
            Permission::ManageCollaborators => "manage its collaborators",
            Permission::ManageSettings => "change its settings",
            Permission::DeleteProject => "delete it",
            Permission::ViewHistory => "read its security history",
            Permission::ViewTokens => "see the tokens that can upload to it",
            Permission::ManagePublishing => "manage its trusted publishers",
        }
    }
}

/// How the request proves who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A signed-in session; `fresh` when the password was entered within `reauth_secs`.
    Session { fresh: bool },
    /// An API token (its caveats are checked by `auth`): never fresh, since a token cannot
    /// re-enter a password, so only uploads are possible with one.
    Token,
}

/// Everything the decision depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject {
    pub role: Option<Role>,
    pub is_admin: bool,
    pub has_2fa: bool,
    pub via: Via,
    /// The project's `owners_require_2fa`.
    pub project_requires_2fa: bool,
    /// The index-wide `require_2fa` setting.
    pub index_requires_2fa: bool,
}

/// Why not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("there is no such project")]
    NotFound,
    #[error("the user has no role on the project")]
    NoRole,
    #[error("the user needs the {} role", .0.as_str())]
    NeedsRole(Role),
    #[error("two-factor authentication is required")]
    Needs2fa,
    #[error("the password must be entered again")]
    NeedsReauth,
}

/// The decision itself: pure, so that it can be tested cell by cell.
pub fn decide(subject: &Subject, permission: Permission) -> Result<(), Denied> {
    let by_role = match (subject.role, permission.role()) {
        (Some(Role::Owner), _) | (Some(Role::Maintainer), Role::Maintainer) => true,
        (Some(Role::Maintainer), Role::Owner) | (None, _) => false,
    };
    let allowed = by_role || (subject.is_admin && permission.for_admins());
    if !allowed {
        return Err(match subject.role {
            None => Denied::NoRole,
            Some(_) => Denied::NeedsRole(permission.role()),
        });
    }
    if (subject.project_requires_2fa || subject.index_requires_2fa) && !subject.has_2fa {
        return Err(Denied::Needs2fa);
    }
    if permission.needs_recent_auth() && subject.via != (Via::Session { fresh: true }) {
        return Err(Denied::NeedsReauth);
    }
    Ok(())
}

/// A refusal, with the project when there is one (for the message).
#[derive(Debug)]
pub struct Refusal {
    pub reason: Denied,
    pub project: Option<Project>,
}

/// May `user` do `permission` on the project named `normalized_name`? The project when so.
pub async fn authorize(
    db: &Db,
    index_requires_2fa: bool,
    user: &User,
    via: Via,
    normalized_name: &str,
    permission: Permission,
) -> Result<Result<Project, Refusal>, sqlx::Error> {
    let Some(project) = super::find_project(db, normalized_name).await? else {
        return Ok(Err(Refusal {
            reason: Denied::NotFound,
            project: None,
        }));
    };
    let role = super::role_of(db, &project.id, &user.id).await?;
    Ok(
        match check(
            db,
            index_requires_2fa,
            user,
            via,
            &project,
            role,
            permission,
        )
        .await?
        {
            Ok(()) => Ok(project),
            Err(reason) => Err(Refusal {
                reason,
                project: Some(project),
            }),
        },
    )
}

/// The upload check for `project`; `creating` when this upload creates it, which makes the
/// uploader its Owner.
pub async fn authorize_upload(
    db: &Db,
    index_requires_2fa: bool,
    user: &User,
    project: &Project,
    creating: bool,
) -> Result<Result<(), Denied>, sqlx::Error> {
    let role = if creating {
        Some(Role::Owner)
    } else {
        super::role_of(db, &project.id, &user.id).await?
    };
    check(
        db,
        index_requires_2fa,
        user,
        Via::Token,
        project,
        role,
        Permission::Upload,
    )
    .await
}

async fn check(
    db: &Db,
    index_requires_2fa: bool,
    user: &User,
    via: Via,
    project: &Project,
    role: Option<Role>,
    permission: Permission,
) -> Result<Result<(), Denied>, sqlx::Error> {
    let project_requires_2fa = project.owners_require_2fa;
    // The methods cost a query: only asked for where they matter.
    let has_2fa = if project_requires_2fa || index_requires_2fa {
        crate::twofactor::methods(db, &user.id).await?.any()
    } else {
        false
    };
    let subject = Subject {
        role,
        is_admin: user.is_admin,
        has_2fa,
        via,
        project_requires_2fa,
        index_requires_2fa,
    };
    Ok(decide(&subject, permission))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: Via = Via::Session { fresh: true };
    const STALE: Via = Via::Session { fresh: false };

    fn subject(role: Option<Role>, is_admin: bool, has_2fa: bool, via: Via) -> Subject {
        Subject {
            role,
            is_admin,
            has_2fa,
            via,
            project_requires_2fa: false,
            index_requires_2fa: false,
        }
    }

    #[test]
    fn owners_may_do_everything_maintainers_only_upload() {
        for permission in Permission::ALL {
            let owner = subject(Some(Role::Owner), false, false, FRESH);
            assert_eq!(decide(&owner, permission), Ok(()), "{permission:?}");
            let maintainer = subject(Some(Role::Maintainer), false, false, FRESH);
            let expected = if permission == Permission::Upload {
                Ok(())
            } else {
                Err(Denied::NeedsRole(Role::Owner))
            };
            assert_eq!(decide(&maintainer, permission), expected, "{permission:?}");
            let stranger = subject(None, false, true, FRESH);
            assert_eq!(decide(&stranger, permission), Err(Denied::NoRole));
        }
    }

    #[test]
    fn admins_read_history_and_nothing_else_without_a_role() {
        for permission in Permission::ALL {
            let admin = subject(None, true, false, FRESH);
            let expected = if permission == Permission::ViewHistory {
                Ok(())
            } else {
                Err(Denied::NoRole)
            };
            assert_eq!(decide(&admin, permission), expected, "{permission:?}");
        }
    }

    #[test]
    fn two_factor_comes_before_freshness_and_either_requirement_counts() {
        for (project, index) in [(true, false), (false, true), (true, true)] {
            for permission in Permission::ALL {
                let mut owner = subject(Some(Role::Owner), false, false, STALE);
                owner.project_requires_2fa = project;
                owner.index_requires_2fa = index;
                assert_eq!(decide(&owner, permission), Err(Denied::Needs2fa));
                owner.has_2fa = true;
                let expected = if permission.needs_recent_auth() {
                    Err(Denied::NeedsReauth)
                } else {
                    Ok(())
                };
                assert_eq!(decide(&owner, permission), expected, "{permission:?}");
            }
        }
    }

    #[test]
    fn destructive_actions_need_a_fresh_session_and_tokens_only_upload() {
        let fresh_only = [
            Permission::ManageReleases,
            Permission::ManageCollaborators,
            Permission::ManageSettings,
            Permission::DeleteProject,
            Permission::ViewTokens,
            Permission::ManagePublishing,
        ];
        for permission in Permission::ALL {
            let stale = subject(Some(Role::Owner), false, false, STALE);
            let token = subject(Some(Role::Owner), false, false, Via::Token);
            let expected = if fresh_only.contains(&permission) {
                Err(Denied::NeedsReauth)
            } else {
                Ok(())
            };
            assert_eq!(decide(&stale, permission), expected, "{permission:?}");
            assert_eq!(decide(&token, permission), expected, "{permission:?}");
        }
    }
}
