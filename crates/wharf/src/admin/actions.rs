//! What admins do to accounts, projects and tokens, from the web pages (`admin::users`,
//! `admin::projects`, `admin::tokens`) or the command line (`cli::admin`): each action is one
//! transaction with its events (the target as source, the admin as `actor`), then a message
//! to the people it affects.

use minijinja::context;
use serde_json::{Value, json};

use crate::accounts::{self, User, directory};
use crate::config::UPLOAD_LIMIT_CAP;
use crate::events::{self, EventTag, RequestMeta, Source};
use crate::packaging::{self, Project};
use crate::tokens::lifecycle::{self, Selection};
use crate::tokens::{Deps, TokenInfo};
use crate::twofactor;

/// What the command line is called in events and journal entries (not a valid username).
pub const CLI_ACTOR: &str = "(command line)";

/// Who acts: a signed-in admin, or (`None`) the command line on the server.
#[derive(Clone, Copy, Debug)]
pub struct AdminActor<'a> {
    pub admin: Option<&'a User>,
    pub meta: &'a RequestMeta,
    pub now_micros: i64,
}

impl<'a> AdminActor<'a> {
    /// The command line on the server (`wharf user …`, `wharf project …`).
    pub fn command_line(meta: &'a RequestMeta, now_micros: i64) -> AdminActor<'a> {
        AdminActor {
            admin: None,
            meta,
            now_micros,
        }
    }

    pub fn name(&self) -> &str {
        self.admin.map_or(CLI_ACTOR, |u| u.username.as_str())
    }

    /// The event's details: `extra` with who acted and through what.
    pub(crate) fn details(&self, mut extra: Value) -> Value {
        extra["actor"] = json!(self.name());
        extra["actor_id"] = json!(self.admin.map(|u| u.id.clone()));
        extra["via"] = json!(if self.admin.is_some() { "web" } else { "cli" });
        extra
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no user named '{0}'")]
    NoUser(String),
    #[error("no project named '{0}'")]
    NoProject(String),
    /// The change is refused (or would change nothing): the message says why.
    #[error("{0}")]
    Refused(String),
    /// What was asked for is not valid: `field` names the input (a form field; the command
    /// line's flag of the same name).
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

async fn user_named(db: &crate::db::Db, username: &str) -> Result<User, AdminError> {
    accounts::find_by_username(db, username.trim())
        .await?
        .ok_or_else(|| AdminError::NoUser(username.trim().to_owned()))
}

async fn project_named(db: &crate::db::Db, name: &str) -> Result<Project, AdminError> {
    packaging::find_project(db, &wharf_packaging::name::normalize(name.trim()))
        .await?
        .ok_or_else(|| AdminError::NoProject(name.trim().to_owned()))
}

/// Tells `user` by e-mail (at their primary address) what an admin did.
async fn tell(deps: Deps<'_>, actor: &AdminActor<'_>, user: &User, subject: &str, what: &str) {
    let Ok(Some(primary)) = accounts::primary_email(deps.db, &user.id).await else {
        return;
    };
    let advice =
        "If you have questions about this change, contact the administrators of this index.";
    deps.mailer
        .notify(
            deps.db,
            (&user.id, &primary.email),
            "admin-change",
            context! { username => user.username.clone(), subject => subject, what => what, advice => advice },
            actor.meta,
            actor.now_micros,
        )
        .await;
}

/// Makes `username` an admin (`on`) or takes the rights away.
pub async fn set_admin(
    deps: Deps<'_>,
    actor: &AdminActor<'_>,
    username: &str,
    on: bool,
) -> Result<User, AdminError> {
    let user = user_named(deps.db, username).await?;
    if !on && actor.admin.is_some_and(|a| a.id == user.id) {
        return Err(AdminError::Refused(
            "you cannot take your own admin rights away; ask another admin".to_owned(),
        ));
    }
    let mut tx = deps.db.begin().await?;
    if !directory::set_admin(&mut tx, &user.id, on).await? {
        let state = if on { "an admin" } else { "not an admin" };
        return Err(AdminError::Refused(format!(
            "user '{}' is {state} already",
            user.username
        )));
    }
    let tag = if on {
        EventTag::AdminUserAdminGranted
    } else {
        EventTag::AdminUserAdminRevoked
    };
    events::record(
        &mut tx,
        Source::User(&user.id),
        tag,
        actor.meta,
        actor.now_micros,
        actor.details(json!({"username": user.username})),
    )
    .await?;
    tx.commit().await?;
    let (subject, what) = if on {
        (
            "You are now an administrator",
            format!(
                "Your account \"{}\" was made an administrator of this index.",
                user.username
            ),
        )
    } else {
        (
            "You are no longer an administrator",
            format!(
                "Your account \"{}\" is no longer an administrator of this index.",
                user.username
            ),
        )
    };
    tell(deps, actor, &user, subject, &what).await;
    Ok(User {
        is_admin: on,
        ..user
    })
}

/// Disables (`active == false`) or enables an account. A disabled account cannot sign in,
/// its sessions end and its tokens are refused; nothing of it is deleted.
pub async fn set_active(
    deps: Deps<'_>,
    actor: &AdminActor<'_>,
    username: &str,
    active: bool,
) -> Result<User, AdminError> {
    let user = user_named(deps.db, username).await?;
    if !active && actor.admin.is_some_and(|a| a.id == user.id) {
        return Err(AdminError::Refused(
            "you cannot disable your own account".to_owned(),
        ));
    }
    let mut tx = deps.db.begin().await?;
    let Some(token_ids) =
        directory::set_active(&mut tx, &user.id, active, actor.now_micros).await?
    else {
        let state = if active { "enabled" } else { "disabled" };
        return Err(AdminError::Refused(format!(
            "user '{}' is {state} already",
            user.username
        )));
    };
    let tag = if active {
        EventTag::AdminUserEnabled
    } else {
        EventTag::AdminUserDisabled
    };
    events::record(
        &mut tx,
        Source::User(&user.id),
        tag,
        actor.meta,
        actor.now_micros,
        actor.details(json!({"username": user.username, "tokens": token_ids.len()})),
    )
    .await?;
    tx.commit().await?;
    // This process at once; the others through the revocation log.
    for id in &token_ids {
        deps.cache.forget(id);
    }
    let (subject, what) = if active {
        (
            "Your account was enabled",
            format!(
                "Your account \"{}\" was enabled again by an administrator: you can sign in, and your API tokens work again.",
                user.username
            ),
        )
    } else {
        (
            "Your account was disabled",
            format!(
                "Your account \"{}\" was disabled by an administrator: you cannot sign in, and your API tokens are refused. Nothing was deleted.",
                user.username
            ),
        )
    };
    tell(deps, actor, &user, subject, &what).await;
    Ok(User {
        is_active: active,
        ..user
    })
}

/// Removes every second factor and recovery code of a user who lost them (after an identity
/// check done outside wharf): the most sensitive admin action, recorded as such.
pub async fn reset_two_factor(
    deps: Deps<'_>,
    actor: &AdminActor<'_>,
    username: &str,
) -> Result<twofactor::Reset, AdminError> {
    let user = user_named(deps.db, username).await?;
    let mut tx = deps.db.begin().await?;
    let reset = twofactor::remove_all(&mut tx, &user.id).await?;
    if !reset.totp && reset.webauthn_credentials == 0 && reset.recovery_codes == 0 {
        return Err(AdminError::Refused(format!(
            "user '{}' has no two-factor methods or recovery codes",
            user.username
        )));
    }
    events::record(
        &mut tx,
        Source::User(&user.id),
        EventTag::AdminUserTwoFactorReset,
        actor.meta,
        actor.now_micros,
        actor.details(json!({
            "username": user.username,
            "sensitive": true,
            "totp": reset.totp,
            "webauthn_credentials": reset.webauthn_credentials,
            "recovery_codes": reset.recovery_codes,
        })),
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(
        actor = actor.name(),
        user = user.username,
        "an admin reset a user's two-factor authentication"
    );
    let what = format!(
        "An administrator removed every two-factor method and recovery code of your account \"{}\". Sign in with your password and set up two-factor authentication again. If you did not ask for this, reset your password at once and contact the administrators.",
        user.username
    );
    tell(
        deps,
        actor,
        &user,
        "Your two-factor authentication was reset",
        &what,
    )
    .await;
    Ok(reset)
}

/// The users with a role on the project (to tell them about an admin's change).
async fn collaborators(deps: Deps<'_>, project: &Project) -> Result<Vec<User>, AdminError> {
    let mut users = Vec::new();
    for c in packaging::roles::collaborators(deps.db, &project.id).await? {
        if let Some(user) = accounts::find_by_id(deps.db, &c.user_id).await? {
            users.push(user);
        }
    }
    Ok(users)
}

/// Deletes a project with its releases and files (their blobs are queued for removal as for
/// any deletion). The caller drops this process's cached pages of it.
pub async fn delete_project(
    deps: Deps<'_>,
    actor: &AdminActor<'_>,
    name: &str,
) -> Result<Project, AdminError> {
    let project = project_named(deps.db, name).await?;
    let told = collaborators(deps, &project).await?;
    let mut tx = deps.db.begin().await?;
    packaging::delete_project_in(
        &mut tx,
        &project,
        actor.name(),
        actor.meta,
        actor.now_micros,
    )
    .await?;
    events::record(
        &mut tx,
        Source::Project(&project.id),
        EventTag::AdminProjectDelete,
        actor.meta,
        actor.now_micros,
        actor.details(json!({"project": project.name})),
    )
    .await?;
    tx.commit().await?;
    let what = format!(
        "An administrator deleted the project \"{}\" with all its releases and files.",
        project.name
    );
    for user in &told {
        tell(deps, actor, user, "A project of yours was deleted", &what).await;
    }
    Ok(project)
}

/// Makes `to` the only Owner of the project; the roles of everyone else end. Returns the
/// project and the usernames whose roles ended.
pub async fn transfer_project(
    deps: Deps<'_>,
    actor: &AdminActor<'_>,
    name: &str,
    to: &str,
) -> Result<(Project, Vec<String>), AdminError> {
    let project = project_named(deps.db, name).await?;
    let new_owner = user_named(deps.db, to).await?;
    if !new_owner.is_active {
        return Err(AdminError::Refused(format!(
            "user '{}' is disabled: enable the account first",
            new_owner.username
        )));
    }
    let mut tx = deps.db.begin().await?;
    let previous =
        packaging::roles::transfer(&mut tx, &project.id, &new_owner.id, actor.now_micros).await?;
    packaging::journal(
        &mut tx,
        &project,
        None,
        &format!("transfer to {}", new_owner.username),
        actor.name(),
        actor.now_micros,
    )
    .await?;
    let previous_names: Vec<String> = previous.iter().map(|(_, name, _)| name.clone()).collect();
    events::record(
        &mut tx,
        Source::Project(&project.id),
        EventTag::AdminProjectTransfer,
        actor.meta,
        actor.now_micros,
        actor.details(json!({
            "project": project.name,
            "to": new_owner.username,
            "roles_removed": previous_names,
        })),
    )
    .await?;
    tx.commit().await?;
    tell(
        deps,
        actor,
        &new_owner,
        "A project was transferred to you",
        &format!(
            "An administrator made you the only Owner of the project \"{}\".",
            project.name
        ),
    )
    .await;
    for (user_id, _, role) in &previous {
        if let Some(user) = accounts::find_by_id(deps.db, user_id).await? {
            let what = format!(
                "An administrator transferred the project \"{}\" to {}: you are no longer its {role}.",
                project.name, new_owner.username
            );
            tell(deps, actor, &user, "A project was transferred", &what).await;
        }
    }
    Ok((project, previous_names))
}

/// Sets the project's own upload size limit (bytes, above `default` and at most the 1 GiB cap),
/// or with `None` returns it to the default.
pub async fn set_upload_limit(
    deps: Deps<'_>,
    actor: &AdminActor<'_>,
    name: &str,
    limit: Option<u64>,
    default: u64,
) -> Result<Project, AdminError> {
    let project = project_named(deps.db, name).await?;
    if let Some(limit) = limit
        && (limit <= default || limit > UPLOAD_LIMIT_CAP)
    {
        return Err(AdminError::Refused(format!(
            "the limit must be above the default of {} MB and at most {} MB",
            default / (1024 * 1024),
            UPLOAD_LIMIT_CAP / (1024 * 1024)
        )));
    }
    let limit = limit.map(|l| l as i64);
    let mut tx = deps.db.begin().await?;
    packaging::set_upload_limit(&mut tx, &project.id, limit).await?;
    events::record(
        &mut tx,
        Source::Project(&project.id),
        EventTag::AdminProjectUploadLimit,
        actor.meta,
        actor.now_micros,
        actor.details(json!({"project": project.name, "upload_limit": limit, "previous": project.upload_limit})),
    )
    .await?;
    tx.commit().await?;
    let what = match limit {
        Some(l) => format!(
            "An administrator raised the upload size limit of the project \"{}\" to {} MB.",
            project.name,
            l / (1024 * 1024)
        ),
        None => format!(
            "An administrator returned the upload size limit of the project \"{}\" to the default of {} MB.",
            project.name,
            default / (1024 * 1024)
        ),
    };
    for user in collaborators(deps, &project).await? {
        tell(
            deps,
            actor,
            &user,
            "A project's upload limit changed",
            &what,
        )
        .await;
    }
    Ok(Project {
        upload_limit: limit,
        ..project
    })
}

/// The tokens a bulk invalidation is asked for, as typed (empty: not given).
#[derive(Clone, Debug, Default)]
pub struct TokenFilters {
    pub user: String,
    pub project: String,
    /// RFC 3339, or a date (its midnight UTC).
    pub created_before: String,
    /// Every token of the index; not with the other filters.
    pub all: bool,
}

/// Whether `invalidate_tokens` changes anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// Only counts what would be revoked.
    DryRun,
    /// Revokes, refusing when the number of matching tokens is not `expected` (the page's
    /// preview, so a confirmation revokes what the admin saw).
    Apply { expected: Option<usize> },
}

/// What a bulk invalidation took (or would take, on a dry run).
#[derive(Debug)]
pub struct Invalidation {
    pub tokens: Vec<TokenInfo>,
    pub owners: usize,
}

/// The longest reason kept and e-mailed.
const REASON_CHARS: usize = 500;

fn invalid(field: &'static str, message: impl Into<String>) -> AdminError {
    AdminError::Invalid {
        field,
        message: message.into(),
    }
}

/// Revokes every token `filters` select, in one transaction with an
/// `account:api_token:invalidated` event per token (and `project:api_token:removed` on the
/// projects it was limited to), logged for every process to drop its cached copy; then
/// e-mails each owner once, listing their tokens (name, scope, creation date) and `reason`.
/// With `Run::DryRun` only counts.
pub async fn invalidate_tokens(
    deps: Deps<'_>,
    actor: &AdminActor<'_>,
    filters: &TokenFilters,
    reason: &str,
    run: Run,
) -> Result<Invalidation, AdminError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(invalid(
            "reason",
            "give a reason: it is recorded with each token and e-mailed to the owners",
        ));
    }
    if reason.chars().count() > REASON_CHARS {
        return Err(invalid(
            "reason",
            format!("the reason must be at most {REASON_CHARS} characters"),
        ));
    }
    let (user, project, before) = (
        filters.user.trim(),
        filters.project.trim(),
        filters.created_before.trim(),
    );
    let filtered = !(user.is_empty() && project.is_empty() && before.is_empty());
    if !filtered && !filters.all {
        return Err(invalid(
            "filters",
            "choose the tokens: by user, project or creation date, or all of them",
        ));
    }
    if filtered && filters.all {
        return Err(invalid(
            "filters",
            "all tokens, or the ones the filters choose: not both",
        ));
    }
    let mut selection = Selection::default();
    if !user.is_empty() {
        selection.user_id = Some(user_named(deps.db, user).await?.id);
    }
    if !project.is_empty() {
        selection.project_id = Some(project_named(deps.db, project).await?.id);
    }
    if !before.is_empty() {
        selection.created_before = Some(crate::clock::parse_instant(before).ok_or_else(|| {
            invalid(
                "created_before",
                format!("\"{before}\" is not a date: use YYYY-MM-DD or RFC 3339, such as 2026-12-01T00:00:00Z"),
            )
        })?);
    }
    let mut tx = deps.db.begin().await?;
    let matched = lifecycle::matching(&mut tx, &selection).await?;
    let expected = match run {
        Run::DryRun => return Ok(invalidation(matched)),
        Run::Apply { expected } => expected,
    };
    if let Some(expected) = expected.filter(|&n| n != matched.len()) {
        return Err(AdminError::Refused(format!(
            "{} match now, not the {expected} of the preview: nothing was invalidated; look at the preview again",
            counted(matched.len(), "token", "tokens")
        )));
    }
    let mut revoked = Vec::with_capacity(matched.len());
    let mut batch = events::Batch::new(actor.meta, actor.now_micros);
    let mut batched = 0;
    for token in matched {
        // Gone meanwhile (deleted by its owner): not counted, no event.
        let Some(projects) = crate::tokens::revoke_in(&mut tx, &token.id, actor.now_micros).await?
        else {
            continue;
        };
        batch.add(
            Source::User(&token.user_id),
            EventTag::AccountApiTokenInvalidated,
            actor.details(json!({
                "macaroon_id": token.id,
                "description": token.description,
                "permissions": {"projects": token.projects},
                "reason": reason,
            })),
        );
        for project_id in &projects {
            batch.add(
                Source::Project(project_id),
                EventTag::ProjectApiTokenRemoved,
                json!({"description": token.description, "user": token.username, "reason": "invalidated by an administrator"}),
            );
        }
        // Statements of bounded size (bound parameters), whatever the number of tokens.
        batched += 1 + projects.len();
        if batched >= 500 {
            std::mem::replace(&mut batch, events::Batch::new(actor.meta, actor.now_micros))
                .flush(&mut tx)
                .await?;
            batched = 0;
        }
        revoked.push(token);
    }
    batch.flush(&mut tx).await?;
    tx.commit().await?;
    // This process at once; the others through the revocation log.
    for token in &revoked {
        deps.cache.forget(&token.id);
    }
    let done = invalidation(revoked);
    tracing::warn!(
        actor = actor.name(),
        tokens = done.tokens.len(),
        owners = done.owners,
        "API tokens invalidated in bulk"
    );
    tell_owners(deps, actor, &done.tokens, reason).await;
    Ok(done)
}

fn invalidation(tokens: Vec<TokenInfo>) -> Invalidation {
    let owners = tokens
        .iter()
        .map(|t| t.user_id.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    Invalidation { tokens, owners }
}

/// "1 token", "3 tokens".
pub fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One message per owner, listing their invalidated tokens (never a secret: none is kept).
async fn tell_owners(deps: Deps<'_>, actor: &AdminActor<'_>, tokens: &[TokenInfo], reason: &str) {
    let mut by_owner: std::collections::BTreeMap<&str, Vec<&TokenInfo>> = Default::default();
    for token in tokens {
        by_owner.entry(&token.user_id).or_default().push(token);
    }
    for (user_id, tokens) in by_owner {
        let Ok(Some(primary)) = accounts::primary_email(deps.db, user_id).await else {
            continue;
        };
        let listed: Vec<minijinja::Value> = tokens
            .iter()
            .map(|t| {
                let mut scope = if t.projects.is_empty() {
                    "the whole account".to_owned()
                } else {
                    format!("the projects {}", t.projects.join(", "))
                };
                if t.read_only {
                    scope.push_str(", read-only");
                }
                context! {
                    name => t.description.clone(),
                    scope => scope,
                    created => crate::clock::iso8601_seconds(t.created).replace('T', " ") + " UTC",
                }
            })
            .collect();
        deps.mailer
            .notify(
                deps.db,
                (user_id, &primary.email),
                "tokens-invalidated",
                context! { username => tokens[0].username.clone(), tokens => listed, reason => reason },
                actor.meta,
                actor.now_micros,
            )
            .await;
    }
}
