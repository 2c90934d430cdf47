//! Collaborators: roles on a project, invitations to take one, and the rule that a project
//! always keeps an Owner. Each change records its event on the project and on the account.

use serde::Serialize;
use serde_json::json;

use super::{Project, Role};
use crate::accounts::User;
use crate::actor::Actor;
use crate::db::Db;
use crate::events::{self, EventTag, Source};

/// Invitations last a week, unless accepted, declined or revoked first.
pub const INVITATION_SECS: i64 = 7 * 86_400;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("A project must keep at least one Owner: make someone else an Owner first.")]
    SoleOwner,
    #[error("{0} is already a collaborator on this project.")]
    AlreadyCollaborator(String),
    #[error("{0} has a pending invitation to this project already.")]
    AlreadyInvited(String),
    #[error("This invitation has expired. Ask an Owner of the project to invite you again.")]
    Expired,
    #[error("This invitation does not exist, or it was for someone else.")]
    NotFound,
    #[error("{0}")]
    Database(String),
}

impl From<sqlx::Error> for RoleError {
    fn from(e: sqlx::Error) -> RoleError {
        tracing::error!(error = %e, "database error");
        RoleError::Database("Internal Server Error".to_owned())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Collaborator {
    pub user_id: String,
    pub username: String,
    pub role: String,
}

pub async fn collaborators(db: &Db, project_id: &str) -> Result<Vec<Collaborator>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT u.id, u.username, r.role_name FROM roles r JOIN users u ON u.id = r.user_id \
         WHERE r.project_id = $1 ORDER BY r.role_name DESC, u.username",
    )
    .bind(project_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(user_id, username, role)| Collaborator {
            user_id,
            username,
            role,
        })
        .collect())
}

/// The project's Owners with a verified primary address, to notify: (user id, username,
/// address).
pub async fn owner_addresses(
    db: &Db,
    project_id: &str,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.username, e.email FROM roles r JOIN users u ON u.id = r.user_id \
         JOIN user_emails e ON e.user_id = u.id AND e.is_primary = 1 AND e.verified = 1 \
         WHERE r.project_id = $1 AND r.role_name = 'Owner' AND u.is_active = 1 ORDER BY u.username",
    )
    .bind(project_id)
    .fetch_all(db.pool())
    .await
}

async fn other_owners(
    conn: &mut sqlx::AnyConnection,
    project_id: &str,
    user_id: &str,
) -> Result<i64, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM roles WHERE project_id = $1 AND role_name = 'Owner' AND user_id <> $2",
    )
    .bind(project_id)
    .bind(user_id)
    .fetch_one(conn)
    .await?;
    Ok(count)
}

async fn record_both(
    conn: &mut sqlx::AnyConnection,
    project: &Project,
    user_id: &str,
    tags: (EventTag, EventTag),
    actor: &Actor<'_>,
    additional: serde_json::Value,
) -> Result<(), sqlx::Error> {
    events::record(
        conn,
        Source::Project(&project.id),
        tags.0,
        actor.meta,
        actor.now_micros,
        additional.clone(),
    )
    .await?;
    let mut for_account = additional;
    for_account["project_name"] = json!(project.name);
    events::record(
        conn,
        Source::User(user_id),
        tags.1,
        actor.meta,
        actor.now_micros,
        for_account,
    )
    .await
}

/// Gives a collaborator another role. Demoting the last Owner is refused.
pub async fn change_role(
    db: &Db,
    project: &Project,
    actor: &Actor<'_>,
    target: &Collaborator,
    role: Role,
) -> Result<(), RoleError> {
    let mut tx = db.begin().await?;
    if role != Role::Owner && other_owners(&mut tx, &project.id, &target.user_id).await? == 0 {
        return Err(RoleError::SoleOwner);
    }
    sqlx::query("UPDATE roles SET role_name = $1 WHERE project_id = $2 AND user_id = $3")
        .bind(role.as_str())
        .bind(&project.id)
        .bind(&target.user_id)
        .execute(&mut *tx)
        .await?;
    record_both(
        &mut tx,
        project,
        &target.user_id,
        (EventTag::ProjectRoleChange, EventTag::AccountRoleChange),
        actor,
        json!({"submitted_by": actor.user.username, "role_name": role.as_str(), "target_user": target.username}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes a collaborator (or lets one leave). Removing the last Owner is refused.
pub async fn remove_role(
    db: &Db,
    project: &Project,
    actor: &Actor<'_>,
    target: &Collaborator,
) -> Result<(), RoleError> {
    let mut tx = db.begin().await?;
    if target.role == Role::Owner.as_str()
        && other_owners(&mut tx, &project.id, &target.user_id).await? == 0
    {
        return Err(RoleError::SoleOwner);
    }
    sqlx::query("DELETE FROM roles WHERE project_id = $1 AND user_id = $2")
        .bind(&project.id)
        .bind(&target.user_id)
        .execute(&mut *tx)
        .await?;
    record_both(
        &mut tx,
        project,
        &target.user_id,
        (EventTag::ProjectRoleRemove, EventTag::AccountRoleRemove),
        actor,
        json!({"submitted_by": actor.user.username, "role_name": target.role, "target_user": target.username}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub struct Invitation {
    pub id: String,
    pub project_name: String,
    pub normalized_name: String,
    pub username: String,
    pub role: String,
    pub invited_by: String,
    pub expires: i64,
}

/// Invites an existing user. Returns the invitation, which the caller e-mails.
pub async fn invite(
    db: &Db,
    project: &Project,
    actor: &Actor<'_>,
    invitee: &User,
    role: Role,
) -> Result<Invitation, RoleError> {
    let mut tx = db.begin().await?;
    let existing: Option<(String,)> =
        sqlx::query_as("SELECT role_name FROM roles WHERE project_id = $1 AND user_id = $2")
            .bind(&project.id)
            .bind(&invitee.id)
            .fetch_optional(&mut *tx)
            .await?;
    if existing.is_some() {
        return Err(RoleError::AlreadyCollaborator(invitee.username.clone()));
    }
    // An expired invitation gives way to a new one.
    sqlx::query(
        "DELETE FROM role_invitations WHERE project_id = $1 AND user_id = $2 AND expires <= $3",
    )
    .bind(&project.id)
    .bind(&invitee.id)
    .bind(actor.now_micros)
    .execute(&mut *tx)
    .await?;
    let id = uuid::Uuid::new_v4().to_string();
    let expires = actor.now_micros + INVITATION_SECS * 1_000_000;
    let inserted = sqlx::query(
        "INSERT INTO role_invitations (id, project_id, user_id, role_name, invited_by, created, expires) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (project_id, user_id) DO NOTHING",
    )
    .bind(&id)
    .bind(&project.id)
    .bind(&invitee.id)
    .bind(role.as_str())
    .bind(&actor.user.username)
    .bind(actor.now_micros)
    .bind(expires)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(RoleError::AlreadyInvited(invitee.username.clone()));
    }
    record_both(
        &mut tx,
        project,
        &invitee.id,
        (EventTag::ProjectRoleInvite, EventTag::AccountRoleInvite),
        actor,
        json!({"submitted_by": actor.user.username, "role_name": role.as_str(), "target_user": invitee.username}),
    )
    .await?;
    tx.commit().await?;
    Ok(Invitation {
        id,
        project_name: project.name.clone(),
        normalized_name: project.normalized_name.clone(),
        username: invitee.username.clone(),
        role: role.as_str().to_owned(),
        invited_by: actor.user.username.clone(),
        expires,
    })
}

type InvitationRow = (String, String, String, String, String, String, i64);

const INVITATION_SELECT: &str = "SELECT i.id, p.name, p.normalized_name, u.username, i.role_name, \
     i.invited_by, i.expires FROM role_invitations i JOIN projects p ON p.id = i.project_id \
     JOIN users u ON u.id = i.user_id";

fn invitation_from_row(row: InvitationRow) -> Invitation {
    let (id, project_name, normalized_name, username, role, invited_by, expires) = row;
    Invitation {
        id,
        project_name,
        normalized_name,
        username,
        role,
        invited_by,
        expires,
    }
}

/// The user's invitations that can still be accepted.
pub async fn invitations_for_user(
    db: &Db,
    user_id: &str,
    now_micros: i64,
) -> Result<Vec<Invitation>, sqlx::Error> {
    let sql = format!(
        "{INVITATION_SELECT} WHERE i.user_id = $1 AND i.expires > $2 ORDER BY p.normalized_name"
    );
    let rows: Vec<InvitationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .bind(now_micros)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(invitation_from_row).collect())
}

/// The project's pending invitations (expired ones included, so Owners see them lapse).
pub async fn invitations_for_project(
    db: &Db,
    project_id: &str,
) -> Result<Vec<Invitation>, sqlx::Error> {
    let sql = format!("{INVITATION_SELECT} WHERE i.project_id = $1 ORDER BY u.username");
    let rows: Vec<InvitationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(project_id)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(invitation_from_row).collect())
}

/// What a user does with an invitation addressed to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Decline,
}

/// Accepts or declines. Returns the project's name.
pub async fn answer_invitation(
    db: &Db,
    actor: &Actor<'_>,
    invitation_id: &str,
    answer: Answer,
) -> Result<String, RoleError> {
    let mut tx = db.begin().await?;
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT project_id, role_name, expires FROM role_invitations WHERE id = $1 AND user_id = $2",
    )
    .bind(invitation_id)
    .bind(&actor.user.id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((project_id, role_name, expires)) = row else {
        return Err(RoleError::NotFound);
    };
    let project: (String, String, String) =
        sqlx::query_as("SELECT id, name, normalized_name FROM projects WHERE id = $1")
            .bind(&project_id)
            .fetch_one(&mut *tx)
            .await?;
    let project = Project {
        id: project.0,
        name: project.1,
        normalized_name: project.2,
        last_serial: 0,
        upload_limit: None,
        total_size: 0,
        owners_require_2fa: false,
    };
    if expires <= actor.now_micros && answer == Answer::Accept {
        return Err(RoleError::Expired);
    }
    sqlx::query("DELETE FROM role_invitations WHERE id = $1")
        .bind(invitation_id)
        .execute(&mut *tx)
        .await?;
    let details = json!({"submitted_by": actor.user.username, "role_name": role_name, "target_user": actor.user.username});
    match answer {
        Answer::Accept => {
            let role = Role::parse(&role_name).unwrap_or(Role::Maintainer);
            super::insert_role(&mut tx, &project.id, &actor.user.id, role, actor.now_micros)
                .await?;
            record_both(
                &mut tx,
                &project,
                &actor.user.id,
                (EventTag::ProjectRoleAdd, EventTag::AccountRoleAdd),
                actor,
                details,
            )
            .await?;
        }
        Answer::Decline => {
            record_both(
                &mut tx,
                &project,
                &actor.user.id,
                (
                    EventTag::ProjectRoleDeclineInvite,
                    EventTag::AccountRoleDeclineInvite,
                ),
                actor,
                details,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(project.name)
}

/// An Owner withdraws an invitation. Returns the invitee's username.
pub async fn revoke_invitation(
    db: &Db,
    project: &Project,
    actor: &Actor<'_>,
    invitation_id: &str,
) -> Result<String, RoleError> {
    let mut tx = db.begin().await?;
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT i.user_id, u.username, i.role_name FROM role_invitations i JOIN users u ON u.id = i.user_id \
         WHERE i.id = $1 AND i.project_id = $2",
    )
    .bind(invitation_id)
    .bind(&project.id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, username, role_name)) = row else {
        return Err(RoleError::NotFound);
    };
    sqlx::query("DELETE FROM role_invitations WHERE id = $1")
        .bind(invitation_id)
        .execute(&mut *tx)
        .await?;
    record_both(
        &mut tx,
        project,
        &user_id,
        (
            EventTag::ProjectRoleRevokeInvite,
            EventTag::AccountRoleRevokeInvite,
        ),
        actor,
        json!({"submitted_by": actor.user.username, "role_name": role_name, "target_user": username}),
    )
    .await?;
    tx.commit().await?;
    Ok(username)
}

#[derive(Clone, Debug, Serialize)]
pub struct OwnedProject {
    pub name: String,
    pub normalized_name: String,
    pub role: String,
    pub latest_version: Option<String>,
    pub created: i64,
}

/// The projects a user has a role on, with their latest version (PEP 440's highest final
/// release not yanked, as `packaging::latest_release` chooses).
pub async fn projects_of_user(db: &Db, user_id: &str) -> Result<Vec<OwnedProject>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT p.id, p.name, p.normalized_name, r.role_name, p.created \
         FROM projects p JOIN roles r ON r.project_id = p.id WHERE r.user_id = $1 \
         ORDER BY p.normalized_name",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    let releases: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT r.project_id, r.version, r.yanked FROM releases r \
         JOIN roles ro ON ro.project_id = r.project_id AND ro.user_id = $1",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    let mut by_project: std::collections::HashMap<&str, Vec<(&str, bool)>> =
        std::collections::HashMap::new();
    for (project_id, version, yanked) in &releases {
        by_project
            .entry(project_id.as_str())
            .or_default()
            .push((version.as_str(), *yanked != 0));
    }
    Ok(rows
        .into_iter()
        .map(|(id, name, normalized_name, role, created)| {
            let latest_version = by_project.get(id.as_str()).and_then(|versions| {
                wharf_packaging::version::latest(versions, |(v, yanked)| (*v, *yanked))
                    .map(|(v, _)| (*v).to_owned())
            });
            OwnedProject {
                name,
                normalized_name,
                role,
                latest_version,
                created,
            }
        })
        .collect())
}

crate::site::template_value!(Collaborator, Invitation, OwnedProject);

/// Makes `to_user_id` the project's only Owner: every other role and every pending invitation
/// ends. Returns the (user id, username, role) of the roles that ended, in the caller's
/// transaction.
pub async fn transfer(
    conn: &mut sqlx::AnyConnection,
    project_id: &str,
    to_user_id: &str,
    now_micros: i64,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    let previous: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT r.user_id, u.username, r.role_name FROM roles r JOIN users u ON u.id = r.user_id \
         WHERE r.project_id = $1 AND r.user_id <> $2 ORDER BY u.username_key",
    )
    .bind(project_id)
    .bind(to_user_id)
    .fetch_all(&mut *conn)
    .await?;
    for table in ["roles", "role_invitations"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE project_id = $1"
        )))
        .bind(project_id)
        .execute(&mut *conn)
        .await?;
    }
    super::insert_role(conn, project_id, to_user_id, super::Role::Owner, now_micros).await?;
    Ok(previous)
}
