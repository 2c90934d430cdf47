//! The publishers store: `oidc_publishers` (one row per CI identity) and
//! `oidc_publisher_projects` (the projects each may publish). Registering and removing one
//! records `project:oidc:publisher-added` / `-removed` in the same transaction.

use std::collections::BTreeMap;

use sqlx::AnyConnection;

use super::claims::{Kind, Lookup, Publisher};
use crate::db::Db;
use crate::events::{self, EventTag, RequestMeta, Source};
use crate::packaging::Project;

/// A publisher as an Owner (or an admin) describes it.
#[derive(Clone, Debug)]
pub struct NewPublisher {
    pub kind: Kind,
    pub issuer: String,
    pub owner: String,
    pub repository: String,
    pub workflow: String,
    pub environment: String,
    pub owner_id: Option<String>,
    /// Google: `sub` when required; generic: the identifying claims' values.
    pub claims: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    #[error("{message}")]
    Invalid { field: Field, message: String },
    #[error("this publisher is already registered for '{0}'")]
    AlreadyRegistered(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The part of a publisher a refusal is about (a form shows the error beside its field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// GitHub's owner, GitLab's namespace, a Google service account's address.
    Owner,
    Repository,
    /// The workflow file, or GitLab's CI config path.
    Workflow,
    Environment,
    OwnerId,
    /// A Google service account's subject.
    Subject,
    /// A generic issuer's claims.
    Claims,
    /// The project a pending publisher creates.
    ProjectName,
}

impl PublisherError {
    pub fn invalid(field: Field, message: impl Into<String>) -> PublisherError {
        PublisherError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// The field the refusal is about (a publisher registered already: its identity).
    pub fn field(&self) -> Field {
        match self {
            PublisherError::Invalid { field, .. } => *field,
            _ => Field::Owner,
        }
    }
}

/// Who registers or removes a publisher, for the event: a user's name, or `None` for the
/// command line.
pub struct By<'a> {
    pub username: Option<&'a str>,
    /// `web`, `cli`, or `trusted publishing` (a pending publisher's first exchange).
    pub via: &'static str,
    pub meta: &'a RequestMeta,
    pub now_micros: i64,
}

impl NewPublisher {
    /// Checks the fields as Warehouse's forms do, and normalises them (a GitHub environment
    /// is case-insensitive, so it is kept in lower case).
    pub fn checked(mut self) -> Result<NewPublisher, PublisherError> {
        let invalid = |field: Field, m: &str| Err(PublisherError::invalid(field, m));
        match self.kind {
            Kind::Google => return self.checked_google(),
            Kind::Generic => return self.checked_generic(),
            Kind::GitHub | Kind::GitLab => {}
        }
        for (field, name, value) in [
            (Field::Owner, "owner", &self.owner),
            (Field::Repository, "repository", &self.repository),
            (Field::Workflow, "workflow", &self.workflow),
        ] {
            if value.trim().is_empty() || value.trim() != value || value.len() > 255 {
                return Err(PublisherError::invalid(
                    field,
                    format!("the {name} must be given, without spaces around it"),
                ));
            }
        }
        let simple = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        match self.kind {
            Kind::GitHub => {
                if !simple(&self.owner) || !simple(&self.repository) {
                    return invalid(
                        Field::Owner,
                        "a GitHub owner and repository are letters, digits, '-', '_' and '.' (OWNER/REPOSITORY)",
                    );
                }
                if self.workflow.contains('/')
                    || !(self.workflow.ends_with(".yml") || self.workflow.ends_with(".yaml"))
                {
                    return invalid(
                        Field::Workflow,
                        "the workflow is a file name in .github/workflows/, ending in .yml or .yaml (such as release.yml)",
                    );
                }
                if self
                    .owner_id
                    .as_deref()
                    .is_some_and(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()))
                {
                    return invalid(
                        Field::OwnerId,
                        "the owner id is the number GitHub gives the owner",
                    );
                }
                self.environment = self.environment.to_lowercase();
                // GitHub's names are case-insensitive: one spelling per identity.
                self.owner = self.owner.to_lowercase();
                self.repository = self.repository.to_lowercase();
            }
            Kind::GitLab => {
                let path_ok = self
                    .owner
                    .split('/')
                    .chain([self.repository.as_str()])
                    .all(|part| !part.is_empty() && simple(part));
                if !path_ok {
                    return invalid(
                        Field::Owner,
                        "a GitLab namespace and project are letters, digits, '-', '_' and '.' (NAMESPACE/PROJECT, subgroups allowed)",
                    );
                }
                if self.workflow.starts_with('/')
                    || self.workflow.ends_with('/')
                    || !(self.workflow.ends_with(".yml") || self.workflow.ends_with(".yaml"))
                {
                    return invalid(
                        Field::Workflow,
                        "the CI config path is relative to the repository, ending in .yml or .yaml (such as .gitlab-ci.yml)",
                    );
                }
                self.owner_id = None;
                // GitLab paths are case-insensitive too (the environment is not).
                self.owner = self.owner.to_lowercase();
                self.repository = self.repository.to_lowercase();
            }
            Kind::Google | Kind::Generic => {}
        }
        self.claims.clear();
        if self.environment.trim() != self.environment || self.environment.len() > 255 {
            return invalid(
                Field::Environment,
                "the environment must not have spaces around it",
            );
        }
        Ok(self)
    }

    /// A Google Cloud service account: its address (any case; kept in lower case) and an
    /// optional subject.
    fn checked_google(mut self) -> Result<NewPublisher, PublisherError> {
        let email = self.owner.trim().to_lowercase();
        let well_formed = email.len() <= 255
            && !email.chars().any(char::is_whitespace)
            && email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        if !well_formed {
            return Err(PublisherError::invalid(
                Field::Owner,
                "the service account's e-mail address must be given, such as publisher@project.iam.gserviceaccount.com",
            ));
        }
        let sub = self.claims.remove("sub").unwrap_or_default();
        let sub = sub.trim();
        if sub.len() > 255 || sub.chars().any(char::is_whitespace) {
            return Err(PublisherError::invalid(
                Field::Subject,
                "the subject is the service account's unique id, without spaces",
            ));
        }
        self.claims = if sub.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([("sub".to_owned(), sub.to_owned())])
        };
        self.owner = email;
        (
            self.repository,
            self.workflow,
            self.environment,
            self.owner_id,
        ) = (String::new(), String::new(), String::new(), None);
        Ok(self)
    }

    /// A generic issuer's publisher: a value for each claim (the caller gives the claims the
    /// issuer's setting names).
    fn checked_generic(mut self) -> Result<NewPublisher, PublisherError> {
        if self.claims.is_empty() {
            return Err(PublisherError::invalid(
                Field::Claims,
                "give the value of each claim that identifies the publisher",
            ));
        }
        for (name, value) in &mut self.claims {
            let trimmed = value.trim().to_owned();
            if trimmed.is_empty() || trimmed.len() > 255 {
                return Err(PublisherError::invalid(
                    Field::Claims,
                    format!("the claim {name} must be given (at most 255 characters)"),
                ));
            }
            *value = trimmed;
        }
        (
            self.owner,
            self.repository,
            self.workflow,
            self.environment,
            self.owner_id,
        ) = (
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            None,
        );
        Ok(self)
    }
}

/// How a publisher's claims are stored: '' when none, else a JSON object (keys sorted).
pub(super) fn claims_column(claims: &BTreeMap<String, String>) -> String {
    if claims.is_empty() {
        String::new()
    } else {
        serde_json::to_string(claims).unwrap_or_default()
    }
}

pub(super) fn claims_from_column(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub(super) type PublisherRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
);

pub(super) const COLUMNS: &str = "p.id, p.kind, p.issuer, p.owner, p.repository, p.workflow, p.environment, p.owner_id, p.claims";

pub(super) fn from_row(row: PublisherRow) -> Option<Publisher> {
    let (id, kind, issuer, owner, repository, workflow, environment, owner_id, claims) = row;
    Some(Publisher {
        claims: claims_from_column(&claims),
        id,
        kind: Kind::parse(&kind)?,
        issuer,
        owner,
        repository,
        workflow,
        environment,
        owner_id,
    })
}

pub(super) fn event_details(publisher: &Publisher, by: &By<'_>) -> serde_json::Value {
    let mut details = described(publisher);
    details["submitted_by"] = serde_json::json!(by.username);
    details["via"] = serde_json::json!(by.via);
    details
}

/// What every event about a publisher says of it.
pub(super) fn described(publisher: &Publisher) -> serde_json::Value {
    serde_json::json!({
        "publisher": publisher.kind.display(),
        "id": publisher.id,
        "specifier": publisher.specifier(),
        "url": publisher.url(),
    })
}

/// Registers the publisher for `project` (reusing the row of the same identity when another
/// project has it already).
pub async fn add(
    db: &Db,
    new: NewPublisher,
    project: &Project,
    by: &By<'_>,
) -> Result<Publisher, PublisherError> {
    let new = new.checked()?;
    let mut tx = db.begin().await?;
    let mut batch = events::Batch::new(by.meta, by.now_micros);
    let publisher = add_in(&mut tx, &mut batch, new, project, by, false).await?;
    batch.flush(&mut tx).await?;
    tx.commit().await?;
    Ok(publisher)
}

/// `add` in the caller's transaction, for a checked publisher; `reified` when it was a
/// pending publisher whose first exchange created the project.
pub(super) async fn add_in(
    conn: &mut AnyConnection,
    batch: &mut events::Batch<'_>,
    new: NewPublisher,
    project: &Project,
    by: &By<'_>,
    reified: bool,
) -> Result<Publisher, PublisherError> {
    // The owner id is part of the identity: a registration never pins (or changes) the row
    // another project's registration made, it gets its own.
    let existing: Option<PublisherRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oidc_publishers p WHERE p.kind = $1 AND p.issuer = $2 \
         AND p.owner = $3 AND p.repository = $4 AND p.workflow = $5 AND p.environment = $6 \
         AND p.claims = $7 AND COALESCE(p.owner_id, '') = $8"
    )))
    .bind(new.kind.as_str())
    .bind(&new.issuer)
    .bind(&new.owner)
    .bind(&new.repository)
    .bind(&new.workflow)
    .bind(&new.environment)
    .bind(claims_column(&new.claims))
    .bind(new.owner_id.clone().unwrap_or_default())
    .fetch_optional(&mut *conn)
    .await?;
    let publisher = match existing.and_then(from_row) {
        Some(publisher) => publisher,
        None => {
            let publisher = Publisher {
                id: uuid::Uuid::new_v4().to_string(),
                kind: new.kind,
                issuer: new.issuer,
                owner: new.owner,
                repository: new.repository,
                workflow: new.workflow,
                environment: new.environment,
                owner_id: new.owner_id,
                claims: new.claims,
            };
            sqlx::query(
                "INSERT INTO oidc_publishers (id, kind, issuer, owner, repository, workflow, environment, owner_id, created, claims) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&publisher.id)
            .bind(publisher.kind.as_str())
            .bind(&publisher.issuer)
            .bind(&publisher.owner)
            .bind(&publisher.repository)
            .bind(&publisher.workflow)
            .bind(&publisher.environment)
            .bind(&publisher.owner_id)
            .bind(by.now_micros)
            .bind(claims_column(&publisher.claims))
            .execute(&mut *conn)
            .await?;
            publisher
        }
    };
    let linked = sqlx::query(
        "INSERT INTO oidc_publisher_projects (publisher_id, project_id, added_by, created) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(&publisher.id)
    .bind(&project.id)
    .bind(by.username)
    .bind(by.now_micros)
    .execute(&mut *conn)
    .await?;
    if linked.rows_affected() == 0 {
        return Err(PublisherError::AlreadyRegistered(project.name.clone()));
    }
    let mut details = event_details(&publisher, by);
    if reified {
        details["reified_from_pending_publisher"] = serde_json::json!(true);
    }
    batch.add(
        Source::Project(&project.id),
        EventTag::ProjectOidcPublisherAdded,
        details,
    );
    Ok(publisher)
}

/// The publishers registered for a project, oldest first.
pub async fn for_project(db: &Db, project_id: &str) -> Result<Vec<Publisher>, sqlx::Error> {
    let rows: Vec<PublisherRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oidc_publishers p JOIN oidc_publisher_projects pp ON pp.publisher_id = p.id \
         WHERE pp.project_id = $1 ORDER BY pp.created, p.id"
    )))
    .bind(project_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().filter_map(from_row).collect())
}

/// Unregisters publisher `id` from `project`; a publisher left without projects is deleted
/// with the tokens minted for it. `false` when it was not registered there.
pub async fn remove(
    db: &Db,
    project: &Project,
    id: &str,
    by: &By<'_>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let row: Option<PublisherRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM oidc_publishers p JOIN oidc_publisher_projects pp ON pp.publisher_id = p.id \
         WHERE pp.project_id = $1 AND p.id = $2"
    )))
    .bind(&project.id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(publisher) = row.and_then(from_row) else {
        return Ok(false);
    };
    sqlx::query("DELETE FROM oidc_publisher_projects WHERE publisher_id = $1 AND project_id = $2")
        .bind(id)
        .bind(&project.id)
        .execute(&mut *tx)
        .await?;
    let (left,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM oidc_publisher_projects WHERE publisher_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if left == 0 {
        sqlx::query("DELETE FROM oidc_tokens WHERE publisher_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM oidc_publishers WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    events::record(
        &mut tx,
        Source::Project(&project.id),
        EventTag::ProjectOidcPublisherRemoved,
        by.meta,
        by.now_micros,
        event_details(&publisher, by),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The publishers of `kind` and `issuer` a token's claims may name; the caller decides
/// among them with `claims::matches_lookup`.
pub async fn candidates(
    db: &Db,
    kind: Kind,
    issuer: &str,
    lookup: &Lookup,
) -> Result<Vec<Publisher>, sqlx::Error> {
    let select = format!("SELECT {COLUMNS} FROM oidc_publishers p");
    let rows: Vec<PublisherRow> = matching(db, &select, kind, issuer, lookup).await?;
    Ok(rows.into_iter().filter_map(from_row).collect())
}

/// The rows `select` reads (from a publishers table named `p`) whose identity the claims
/// may name, oldest first: registered and pending publishers are looked up alike.
pub(super) async fn matching<R>(
    db: &Db,
    select: &str,
    kind: Kind,
    issuer: &str,
    lookup: &Lookup,
) -> Result<Vec<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{select} WHERE p.kind = $1 AND p.issuer = $2 AND lower(p.owner) = lower($3) \
         AND lower(p.repository) = lower($4) AND p.workflow = $5 ORDER BY p.created, p.id"
    )))
    .bind(kind.as_str())
    .bind(issuer)
    .bind(&lookup.owner)
    .bind(&lookup.repository)
    .bind(&lookup.workflow)
    .fetch_all(db.pool())
    .await
}

/// The projects a publisher may publish: (id, name).
pub async fn projects_of(
    conn: &mut AnyConnection,
    publisher_id: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.id, p.name FROM projects p JOIN oidc_publisher_projects pp ON pp.project_id = p.id \
         WHERE pp.publisher_id = $1 ORDER BY p.normalized_name",
    )
    .bind(publisher_id)
    .fetch_all(conn)
    .await
}

/// Pins GitHub's `repository_owner_id` the first time it is learnt, so that a repository
/// deleted and re-created under the same name by someone else can no longer publish. The
/// owner id is part of a publisher's identity: where a twin row is already pinned to this
/// owner, the unpinned row's projects move to it and the row goes. Returns the row that now
/// holds the identity, or `None` when another exchange pinned a different owner first.
pub async fn pin_owner_id(
    conn: &mut AnyConnection,
    publisher: &Publisher,
    owner_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let twin: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM oidc_publishers WHERE kind = $1 AND issuer = $2 AND owner = $3 \
         AND repository = $4 AND workflow = $5 AND environment = $6 AND claims = $7 AND owner_id = $8",
    )
    .bind(publisher.kind.as_str())
    .bind(&publisher.issuer)
    .bind(&publisher.owner)
    .bind(&publisher.repository)
    .bind(&publisher.workflow)
    .bind(&publisher.environment)
    .bind(claims_column(&publisher.claims))
    .bind(owner_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((twin,)) = twin {
        sqlx::query(
            "INSERT INTO oidc_publisher_projects (publisher_id, project_id, added_by, created) \
             SELECT $1, project_id, added_by, created FROM oidc_publisher_projects WHERE publisher_id = $2 \
             ON CONFLICT DO NOTHING",
        )
        .bind(&twin)
        .bind(&publisher.id)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM oidc_publishers WHERE id = $1 AND owner_id IS NULL")
            .bind(&publisher.id)
            .execute(&mut *conn)
            .await?;
        return Ok(Some(twin));
    }
    sqlx::query("UPDATE oidc_publishers SET owner_id = $1 WHERE id = $2 AND owner_id IS NULL")
        .bind(owner_id)
        .bind(&publisher.id)
        .execute(&mut *conn)
        .await?;
    let pinned: Option<(Option<String>,)> =
        sqlx::query_as("SELECT owner_id FROM oidc_publishers WHERE id = $1")
            .bind(&publisher.id)
            .fetch_optional(conn)
            .await?;
    Ok((pinned.and_then(|(id,)| id).as_deref() == Some(owner_id)).then(|| publisher.id.clone()))
}

/// What an upload with an API token must respect of the project's publishing: whether only
/// trusted publishers may upload, and whether it has one (its Owners are then told of the
/// token's upload).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Publishing {
    pub trusted_only: bool,
    pub has_publisher: bool,
}

pub async fn publishing(db: &Db, project_id: &str) -> Result<Publishing, sqlx::Error> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT p.trusted_publishing_only, \
         (SELECT COUNT(*) FROM oidc_publisher_projects pp WHERE pp.project_id = p.id) \
         FROM projects p WHERE p.id = $1",
    )
    .bind(project_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(
        row.map_or_else(Publishing::default, |(only, count)| Publishing {
            trusted_only: only != 0,
            has_publisher: count > 0,
        }),
    )
}

/// Turns "Only trusted publishers may upload" on or off; `true` when it changed (and the
/// change was recorded, in the same transaction).
pub async fn set_trusted_only(
    db: &Db,
    project: &Project,
    enable: bool,
    by: &By<'_>,
) -> Result<bool, sqlx::Error> {
    use crate::packaging::{Switch, set_switch};
    let details = serde_json::json!({"modified_by": by.username, "via": by.via});
    set_switch(
        db,
        project,
        Switch::TrustedPublishingOnly,
        enable,
        by.meta,
        by.now_micros,
        details,
    )
    .await
}
