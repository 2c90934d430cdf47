//! Pending publishers (`oidc_pending_publishers`): a CI identity a user registers for a
//! project that does not exist yet. The first exchange of a token it matches creates the
//! project with that user as Owner, turns the pending publisher into an ordinary one and drops
//! the other pending publishers of the name, in the exchange's transaction (as Warehouse's
//! `reify_pending_publisher` does). Registering one takes a name a new project could take.

use sqlx::AnyConnection;

use super::claims::{Kind, Lookup, Publisher};
use super::publishers::{self, By, COLUMNS, Field, NewPublisher, PublisherError, PublisherRow};
use crate::accounts::User;
use crate::db::Db;
use crate::events::{self, EventTag, Source};
use crate::packaging::{self, NameRefusal, Project};

/// How many pending publishers one user may have at once (Warehouse's limit).
pub const PER_USER: i64 = 3;

/// A pending publisher: the publisher's fields (its `id` is the pending row's), the project
/// it will create and the user who will own it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub publisher: Publisher,
    pub project_name: String,
    pub normalized_name: String,
    pub added_by: String,
}

type PendingRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
);

const PENDING_COLUMNS: &str = "p.project_name, p.normalized_name, p.added_by";

fn from_row(row: PendingRow) -> Option<Pending> {
    let (
        id,
        kind,
        issuer,
        owner,
        repository,
        workflow,
        environment,
        owner_id,
        claims,
        name,
        norm,
        by,
    ) = row;
    let fields: PublisherRow = (
        id,
        kind,
        issuer,
        owner,
        repository,
        workflow,
        environment,
        owner_id,
        claims,
    );
    Some(Pending {
        publisher: publishers::from_row(fields)?,
        project_name: name,
        normalized_name: norm,
        added_by: by,
    })
}

/// Why a name cannot be registered for a pending publisher, in words for the form.
pub fn name_refusal_message(display: &str, refusal: &NameRefusal) -> String {
    match refusal {
        NameRefusal::Stdlib => format!(
            "the name '{display}' isn't allowed (conflict with Python Standard Library module name)"
        ),
        NameRefusal::Proxied => format!(
            "the name '{display}' is served from the upstream index; an administrator can claim it for this index first"
        ),
        NameRefusal::Confusable(existing) => {
            format!("the name '{display}' is too similar to an existing project ('{existing}')")
        }
        NameRefusal::Taken => format!(
            "a project named '{display}' exists already: its Owners register publishers on its publishing page"
        ),
    }
}

/// Registers a pending publisher of `owner` for the project `project_name`.
pub async fn add(
    db: &Db,
    new: NewPublisher,
    project_name: &str,
    owner: &User,
    proxying: bool,
    require_2fa: bool,
    by: &By<'_>,
) -> Result<Pending, PublisherError> {
    let new = new.checked()?;
    let display = project_name.trim();
    if !wharf_packaging::name::is_valid(display) {
        return Err(PublisherError::invalid(
            Field::ProjectName,
            format!(
                "'{display}' is not a valid project name: letters, digits, '.', '_' and '-', starting and ending with a letter or digit"
            ),
        ));
    }
    let normalized = wharf_packaging::name::normalize(display);
    if let Err(refusal) = packaging::check_new_name(db, display, &normalized, proxying).await? {
        return Err(PublisherError::invalid(
            Field::ProjectName,
            name_refusal_message(display, &refusal),
        ));
    }
    let mut conn = db.pool().acquire().await?;
    if let Some(reason) = owner_may_not_create(&mut conn, &owner.id, require_2fa).await? {
        return Err(PublisherError::invalid(
            Field::ProjectName,
            format!(
                "the project a pending publisher creates is owned by {}, and {reason}",
                owner.username
            ),
        ));
    }
    drop(conn);
    let mut tx = db.begin().await?;
    // One add at a time per user, so that the count holds until the insert: a write to the
    // user's row locks it on PostgreSQL (SQLite has one writer anyway).
    sqlx::query("UPDATE users SET is_active = is_active WHERE id = $1")
        .bind(&owner.id)
        .execute(&mut *tx)
        .await?;
    let (held,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM oidc_pending_publishers WHERE added_by = $1")
            .bind(&owner.id)
            .fetch_one(&mut *tx)
            .await?;
    if held >= PER_USER {
        return Err(PublisherError::invalid(
            Field::ProjectName,
            format!(
                "you have {held} pending publishers already, the most one account may have: remove one, or publish with it first"
            ),
        ));
    }
    let pending = Pending {
        publisher: Publisher {
            id: uuid::Uuid::new_v4().to_string(),
            kind: new.kind,
            issuer: new.issuer,
            owner: new.owner,
            repository: new.repository,
            workflow: new.workflow,
            environment: new.environment,
            owner_id: new.owner_id,
            claims: new.claims,
        },
        project_name: display.to_owned(),
        normalized_name: normalized,
        added_by: owner.id.clone(),
    };
    let p = &pending.publisher;
    let inserted = sqlx::query(
        "INSERT INTO oidc_pending_publishers (id, project_name, normalized_name, kind, issuer, owner, \
         repository, workflow, environment, owner_id, added_by, created, claims) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING",
    )
    .bind(&p.id)
    .bind(&pending.project_name)
    .bind(&pending.normalized_name)
    .bind(p.kind.as_str())
    .bind(&p.issuer)
    .bind(&p.owner)
    .bind(&p.repository)
    .bind(&p.workflow)
    .bind(&p.environment)
    .bind(&p.owner_id)
    .bind(&owner.id)
    .bind(by.now_micros)
    .bind(publishers::claims_column(&p.claims))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(PublisherError::invalid(
            Field::Workflow,
            "this publisher is pending for a project already: one CI workflow can create one project",
        ));
    }
    events::record(
        &mut tx,
        Source::User(&owner.id),
        EventTag::AccountPendingOidcPublisherAdded,
        by.meta,
        by.now_micros,
        event_details(&pending, by),
    )
    .await?;
    tx.commit().await?;
    Ok(pending)
}

fn event_details(pending: &Pending, by: &By<'_>) -> serde_json::Value {
    let mut details = publishers::event_details(&pending.publisher, by);
    details["project"] = serde_json::json!(pending.project_name);
    details
}

/// A pending publisher dropped by wharf itself, and why.
fn dropped_details(pending: &Pending, reason: String) -> serde_json::Value {
    let mut details = publishers::described(&pending.publisher);
    details["project"] = serde_json::json!(pending.project_name);
    details["reason"] = serde_json::json!(reason);
    details
}

/// A user's pending publishers, oldest first.
pub async fn for_user(db: &Db, user_id: &str) -> Result<Vec<Pending>, sqlx::Error> {
    list(db, "p.added_by = $1", user_id).await
}

/// The pending publishers of a project name (normalised), oldest first.
pub async fn for_name(db: &Db, normalized: &str) -> Result<Vec<Pending>, sqlx::Error> {
    list(db, "p.normalized_name = $1", normalized).await
}

async fn list(db: &Db, filter: &str, value: &str) -> Result<Vec<Pending>, sqlx::Error> {
    let rows: Vec<PendingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, {PENDING_COLUMNS} FROM oidc_pending_publishers p WHERE {filter} \
         ORDER BY p.created, p.id"
    )))
    .bind(value)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().filter_map(from_row).collect())
}

/// Removes pending publisher `id`; `false` when there is none. `user_id`: only that user's.
pub async fn remove(
    db: &Db,
    id: &str,
    user_id: Option<&str>,
    by: &By<'_>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let row: Option<PendingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, {PENDING_COLUMNS} FROM oidc_pending_publishers p WHERE p.id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(pending) = row.and_then(from_row) else {
        return Ok(false);
    };
    if user_id.is_some_and(|user| user != pending.added_by) {
        return Ok(false);
    }
    sqlx::query("DELETE FROM oidc_pending_publishers WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    events::record(
        &mut tx,
        Source::User(&pending.added_by),
        EventTag::AccountPendingOidcPublisherRemoved,
        by.meta,
        by.now_micros,
        event_details(&pending, by),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The pending publishers of `kind` and `issuer` the claims may name (decided among by
/// `claims::matches_lookup`, as for registered ones).
pub async fn candidates(
    db: &Db,
    kind: Kind,
    issuer: &str,
    lookup: &Lookup,
) -> Result<Vec<Pending>, sqlx::Error> {
    let select = format!("SELECT {COLUMNS}, {PENDING_COLUMNS} FROM oidc_pending_publishers p");
    let rows: Vec<PendingRow> = publishers::matching(db, &select, kind, issuer, lookup).await?;
    Ok(rows.into_iter().filter_map(from_row).collect())
}

/// Why a pending publisher's exchange cannot create its project.
#[derive(Debug, thiserror::Error)]
pub enum ReifyError {
    #[error("{0}")]
    Refused(String),
    /// A parallel exchange created the project first, or the user removed it meanwhile.
    #[error("the pending publisher is gone")]
    Gone,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Creates the pending publisher's project with its user as Owner and registers the
/// publisher for it, in the exchange's transaction; the name's pending publishers are gone
/// after. The project's creation and the publisher's registration are events of the project.
pub async fn reify(
    conn: &mut AnyConnection,
    batch: &mut events::Batch<'_>,
    pending: &Pending,
    proxying: bool,
    require_2fa: bool,
    by: &By<'_>,
) -> Result<Publisher, ReifyError> {
    let refused = |m: String| Err(ReifyError::Refused(m));
    // Taken first: of two exchanges (or an exchange and its removal), one has it.
    let taken = sqlx::query("DELETE FROM oidc_pending_publishers WHERE id = $1")
        .bind(&pending.publisher.id)
        .execute(&mut *conn)
        .await?;
    if taken.rows_affected() != 1 {
        return Err(ReifyError::Gone);
    }
    if let Some(reason) = name_refused_now(conn, pending).await? {
        return refused(reason);
    }
    let owner: Option<(String, i64)> =
        sqlx::query_as("SELECT username, is_active FROM users WHERE id = $1")
            .bind(&pending.added_by)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((owner_name, 1)) = owner else {
        return refused(
            "the account that registered this pending publisher is disabled".to_owned(),
        );
    };
    if let Some(reason) = owner_may_not_create(conn, &pending.added_by, require_2fa).await? {
        return refused(reason);
    }
    let project = Project {
        id: uuid::Uuid::new_v4().to_string(),
        name: pending.project_name.clone(),
        normalized_name: pending.normalized_name.clone(),
        last_serial: 0,
        upload_limit: None,
        total_size: 0,
        owners_require_2fa: false,
    };
    if !packaging::create_project(
        conn,
        batch,
        &project,
        &pending.added_by,
        &owner_name,
        by.now_micros,
    )
    .await?
    {
        return refused(format!(
            "the project '{}' exists already (its Owners register publishers on its publishing page)",
            pending.project_name
        ));
    }
    if !crate::proxy::store::mark_hosted(conn, &pending.normalized_name, by.now_micros, proxying)
        .await?
    {
        return refused(format!(
            "the name '{}' is served from the upstream index",
            pending.project_name
        ));
    }
    let p = &pending.publisher;
    let new = NewPublisher {
        kind: p.kind,
        issuer: p.issuer.clone(),
        owner: p.owner.clone(),
        repository: p.repository.clone(),
        workflow: p.workflow.clone(),
        environment: p.environment.clone(),
        owner_id: p.owner_id.clone(),
        claims: p.claims.clone(),
    };
    let registered = By {
        username: Some(&owner_name),
        via: "trusted publishing",
        meta: by.meta,
        now_micros: by.now_micros,
    };
    let publisher = publishers::add_in(conn, batch, new, &project, &registered, true)
        .await
        .map_err(|e| match e {
            PublisherError::Database(e) => ReifyError::Database(e),
            other => ReifyError::Refused(other.to_string()),
        })?;
    drop_for_name(
        conn,
        batch,
        &pending.normalized_name,
        "the project was created by another publisher",
    )
    .await?;
    Ok(publisher)
}

/// Drops the pending publishers of a name that a project has just taken, in the transaction
/// that creates it, each recorded on its user's log with `reason`.
pub async fn drop_for_name(
    conn: &mut AnyConnection,
    batch: &mut events::Batch<'_>,
    normalized: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let rows: Vec<PendingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, {PENDING_COLUMNS} FROM oidc_pending_publishers p \
         WHERE p.normalized_name = $1"
    )))
    .bind(normalized)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    for dropped in rows.into_iter().filter_map(from_row) {
        let details = dropped_details(&dropped, reason.to_owned());
        batch.add(
            Source::User(&dropped.added_by),
            EventTag::AccountPendingOidcPublisherRemoved,
            details,
        );
    }
    sqlx::query("DELETE FROM oidc_pending_publishers WHERE normalized_name = $1")
        .bind(normalized)
        .execute(conn)
        .await?;
    Ok(())
}

/// Why the name can no longer be created now (checked again at the exchange: a project that
/// looks like it may have been created since the registration).
async fn name_refused_now(
    conn: &mut AnyConnection,
    pending: &Pending,
) -> Result<Option<String>, sqlx::Error> {
    if wharf_packaging::name::is_stdlib_module(&pending.normalized_name) {
        return Ok(Some(name_refusal_message(
            &pending.project_name,
            &NameRefusal::Stdlib,
        )));
    }
    let ultra = wharf_packaging::name::ultranormalize(&pending.project_name);
    let similar: Option<(String,)> =
        sqlx::query_as("SELECT name FROM projects WHERE ultranormalized_name = $1 LIMIT 1")
            .bind(ultra)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(similar.map(|(existing,)| {
        let refusal = if wharf_packaging::name::normalize(&existing) == pending.normalized_name {
            NameRefusal::Taken
        } else {
            NameRefusal::Confusable(existing)
        };
        name_refusal_message(&pending.project_name, &refusal)
    }))
}

/// What a user must have to create projects, as for an upload with a token: a verified
/// primary address, and a second factor where the index requires one.
async fn owner_may_not_create(
    conn: &mut AnyConnection,
    user_id: &str,
    require_2fa: bool,
) -> Result<Option<String>, sqlx::Error> {
    let verified: Option<(i64,)> =
        sqlx::query_as("SELECT verified FROM user_emails WHERE user_id = $1 AND is_primary = 1")
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
    if verified.is_none_or(|(v,)| v == 0) {
        return Ok(Some(
            "the account has no verified primary e-mail address".to_owned(),
        ));
    }
    if require_2fa {
        let (methods,): (i64,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM users WHERE id = $1 AND totp_secret IS NOT NULL) + \
             (SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = $1)",
        )
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
        if methods == 0 {
            return Ok(Some(
                "the account has no two-factor authentication, which this index requires"
                    .to_owned(),
            ));
        }
    }
    Ok(None)
}

/// Drops a pending publisher whose exchange could not create its project, with the reason
/// on its user's log (Warehouse deletes it too), so that it stops standing in the way.
pub async fn drop_refused(
    db: &Db,
    pending: &Pending,
    reason: &str,
    meta: &crate::events::RequestMeta,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let gone = sqlx::query("DELETE FROM oidc_pending_publishers WHERE id = $1")
        .bind(&pending.publisher.id)
        .execute(&mut *tx)
        .await?;
    if gone.rows_affected() == 1 {
        events::record(
            &mut tx,
            Source::User(&pending.added_by),
            EventTag::AccountPendingOidcPublisherRemoved,
            meta,
            now_micros,
            dropped_details(
                pending,
                format!("its first publish could not create the project: {reason}"),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
