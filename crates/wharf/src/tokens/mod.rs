//! API tokens: issuance and verification. Each token has its own random 32-byte root key,
//! stored sealed (AES-256-GCM under a key derived from the server key, bound to the token's
//! id), so a copy of the database alone cannot mint tokens. Verifying one costs a row lookup,
//! one decryption and an HMAC chain the first time, then only the HMAC chain (the opened key
//! is kept in memory), never a password hash. Bulk invalidation and rotation are in
//! `lifecycle.rs`.

pub mod cache;
mod info;
pub mod leaks;
pub mod lifecycle;
mod read;
pub use read::mark_used;
pub mod uses;
pub mod views;

use std::sync::Arc;

use rand::RngCore;
use wharf_macaroon::{Caveat, Context, Macaroon, ProjectRef};

use crate::accounts::User;
use crate::clock::Clock;
use crate::db::Db;
use crate::email::Mailer;
use crate::events::{self, EventTag, RequestMeta, Source};
use crate::packaging::Project;
use crate::signing::ServerKey;
use cache::{TokenCache, TokenRow};
pub use info::{TokenInfo, find, for_project, list_for_user, take_expiring_soon};

/// What the server key is derived for to seal root keys.
const KEY_SEALING: &str = "macaroon-root-key";
/// Root keys are this long in clear; sealed they are nonce + key + tag (60 bytes).
const KEY_BYTES: usize = 32;

fn seal_key(keys: &ServerKey, token_id: &str, key: &[u8]) -> Vec<u8> {
    keys.seal(KEY_SEALING, token_id.as_bytes(), key)
}

/// The root key of a token's row, or `None` when it does not open (another server key, or a
/// row copied from another token).
pub fn open_key(keys: &ServerKey, token_id: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    let opened = keys.open(KEY_SEALING, token_id.as_bytes(), sealed);
    if opened.is_none() {
        tracing::warn!(
            token = token_id,
            "a token's root key does not open with this server key"
        );
    }
    opened
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token named '{0}' already exists for this user")]
    DuplicateDescription(String),
    #[error("the token name must be 1 to 100 characters")]
    InvalidDescription,
    #[error("the token lifetime must be positive")]
    InvalidLifetime,
    /// The token was deleted (or replaced without a grace period) meanwhile.
    #[error("no such token")]
    Gone,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a new token may do.
pub struct TokenScope<'a> {
    /// Empty: the whole account.
    pub projects: &'a [Project],
    /// Seconds from now, if the token expires.
    pub expires_in: Option<i64>,
    /// A token that reads the index (with `read_access = "users"`) and never uploads.
    pub read_only: bool,
}

/// Where tokens are minted: the database, the server key that seals their root keys, and the
/// location they name (the index's URL).
pub struct Issuer<'a> {
    pub db: &'a Db,
    pub keys: &'a ServerKey,
    pub location: &'a str,
}

impl<'a> Issuer<'a> {
    /// `deps` is usually `&AppState` (it converts), so a handler writes `Issuer::of(&state, …)`.
    pub fn of(deps: impl Into<Deps<'a>>, location: &'a str) -> Issuer<'a> {
        let deps = deps.into();
        Issuer {
            db: deps.db,
            keys: deps.keys,
            location,
        }
    }
}

/// What the token functions that write, revoke and notify use of the server: the pool, the
/// key that seals root keys, this process's revocation cache, the mailer and the clock.
/// `&AppState` converts into it (in `state.rs`), so this module does not know the state.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub db: &'a Db,
    pub keys: &'a ServerKey,
    pub cache: &'a TokenCache,
    pub mailer: &'a Mailer,
    pub clock: &'a Clock,
}

/// Mints a token for `user`, stores it, records the events, and returns the secret string,
/// which is never stored and cannot be shown again.
pub async fn create(
    issuer: &Issuer<'_>,
    user: &User,
    description: &str,
    scope: &TokenScope<'_>,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<String, TokenError> {
    let mut tx = issuer.db.begin().await?;
    let minted = insert(
        &mut tx,
        issuer,
        user,
        description,
        scope,
        meta,
        now_micros,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(minted.secret)
}

/// A token just written: its id and its secret (shown once, never stored).
pub(crate) struct Minted {
    pub id: String,
    pub secret: String,
}

/// Mints and stores a token inside the caller's transaction, with its `api_token:added`
/// events; `replaces` names the token it replaces (a rotation).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert(
    conn: &mut sqlx::AnyConnection,
    issuer: &Issuer<'_>,
    user: &User,
    description: &str,
    scope: &TokenScope<'_>,
    meta: &RequestMeta,
    now_micros: i64,
    replaces: Option<&str>,
) -> Result<Minted, TokenError> {
    let description = description.trim();
    if description.is_empty() || description.chars().count() > 100 {
        return Err(TokenError::InvalidDescription);
    }
    let now = now_micros.div_euclid(1_000_000);
    let mut caveats = Vec::new();
    if scope.projects.is_empty() {
        caveats.push(Caveat::RequestUser(user.id.clone()));
    } else {
        caveats.push(Caveat::ProjectName(
            scope
                .projects
                .iter()
                .map(|p| p.normalized_name.clone())
                .collect(),
        ));
        caveats.push(Caveat::ProjectId(
            scope.projects.iter().map(|p| p.id.clone()).collect(),
        ));
    }
    let expires = match scope.expires_in {
        Some(seconds) if seconds <= 0 => return Err(TokenError::InvalidLifetime),
        Some(seconds) => {
            caveats.push(Caveat::Expiration {
                expires_at: now + seconds,
                not_before: now,
            });
            Some(now + seconds)
        }
        None => None,
    };
    let caveat_json: Vec<String> = caveats.iter().map(Caveat::to_json).collect();
    let permissions = if scope.projects.is_empty() {
        serde_json::json!({"permissions": "user", "version": 1})
    } else {
        let names: Vec<&str> = scope
            .projects
            .iter()
            .map(|p| p.normalized_name.as_str())
            .collect();
        serde_json::json!({"permissions": {"projects": names}, "version": 1})
    };

    let id = uuid::Uuid::new_v4().to_string();
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let mut macaroon = Macaroon::new(issuer.location, id.as_bytes(), &key);
    for caveat in &caveat_json {
        macaroon.add_first_party_caveat(caveat.as_bytes());
    }

    let inserted = sqlx::query(
        "INSERT INTO macaroons (id, user_id, description, created, expires, caveats, permissions_caveat, additional, key, read_only) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (user_id, description) DO NOTHING",
    )
    .bind(&id)
    .bind(&user.id)
    .bind(description)
    .bind(now_micros)
    .bind(expires.map(|e| e * 1_000_000))
    .bind(serde_json::to_string(&caveat_json).unwrap_or_default())
    .bind(permissions.to_string())
    .bind(serde_json::json!({"made_with_2fa": false}).to_string())
    .bind(seal_key(issuer.keys, &id, &key))
    .bind(i64::from(scope.read_only))
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(TokenError::DuplicateDescription(description.to_owned()));
    }
    for project in scope.projects {
        sqlx::query("INSERT INTO macaroon_projects (macaroon_id, project_id) VALUES ($1, $2)")
            .bind(&id)
            .bind(&project.id)
            .execute(&mut *conn)
            .await?;
    }
    let mut added = serde_json::json!({"macaroon_id": id, "description": description, "caveats": caveats_for_event(&caveat_json), "expires": expires, "read_only": scope.read_only});
    if let Some(old) = replaces {
        added["replaces"] = serde_json::json!(old);
    }
    let mut batch = events::Batch::new(meta, now_micros);
    batch.add(
        Source::User(&user.id),
        EventTag::AccountApiTokenAdded,
        added,
    );
    for project in scope.projects {
        batch.add(
            Source::Project(&project.id),
            EventTag::ProjectApiTokenAdded,
            serde_json::json!({"description": description, "user": user.username}),
        );
    }
    batch.flush(&mut *conn).await?;
    Ok(Minted {
        id,
        secret: macaroon.to_token(),
    })
}

/// Brings rows written by earlier versions up to date, at start-up: seals the root keys still
/// stored in clear (live and deleted tokens), and records the project ids of project-scoped
/// tokens from their ProjectId caveats. Idempotent, and three small queries when nothing is
/// left to do. Returns how many rows it changed.
pub async fn upgrade_stored(db: &Db, keys: &ServerKey) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    let sqlite = db.backend() == crate::db::Backend::Sqlite;
    if sqlite {
        // The clear key's old bytes are zeroed, not left in the page's free space.
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(&mut *tx)
            .await?;
    }
    let mut changed = 0;
    for table in ["macaroons", "deleted_macaroons"] {
        let clear: Vec<(String, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, key FROM {table} WHERE length(key) = {KEY_BYTES}"
        )))
        .fetch_all(&mut *tx)
        .await?;
        for (id, key) in clear {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET key = $1 WHERE id = $2"
            )))
            .bind(seal_key(keys, &id, &key))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            changed += 1;
        }
    }
    let unrecorded: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.id, m.caveats FROM macaroons m WHERE m.permissions_caveat LIKE '%\"projects\"%' \
         AND NOT EXISTS (SELECT 1 FROM macaroon_projects mp WHERE mp.macaroon_id = m.id)",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (id, caveats) in unrecorded {
        let caveats: Vec<String> = serde_json::from_str(&caveats).unwrap_or_default();
        let ids = caveats
            .iter()
            .filter_map(|c| match Caveat::parse(c.as_bytes()) {
                Ok(Caveat::ProjectId(ids)) => Some(ids),
                _ => None,
            })
            .flatten();
        for project_id in ids {
            sqlx::query(
                "INSERT INTO macaroon_projects (macaroon_id, project_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(&project_id)
            .execute(&mut *tx)
            .await?;
            changed += 1;
        }
    }
    tx.commit().await?;
    if sqlite && changed > 0 {
        // Nor left in the write-ahead log's older copies of the pages.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(db.pool())
            .await?;
    }
    if changed > 0 {
        tracing::info!(
            rows = changed,
            "sealed token keys and recorded token projects"
        );
    }
    Ok(changed)
}

fn caveats_for_event(caveats: &[String]) -> Vec<serde_json::Value> {
    caveats
        .iter()
        .filter_map(|c| serde_json::from_str(c).ok())
        .collect()
}

/// A token that was found (in memory or in the database): whose it is, and what it still has
/// to prove.
#[derive(Clone, Debug)]
pub struct PresentedToken {
    pub id: String,
    macaroon: Macaroon,
    row: Arc<TokenRow>,
}

/// Why a presented token does not authenticate.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not a token of ours: bad prefix, not base64, not a macaroon, or no such row.
    Unknown,
    /// A genuine token (its signature checks out) that was deleted: its owner is told.
    Deleted {
        id: String,
        user_id: String,
        description: String,
    },
    /// A real token whose signature or caveats fail; the reasons are warehouse's messages.
    Invalid(String),
}

/// Finds the token's row: from memory when this process has seen the token, else with one
/// indexed query. No password hash is involved, ever.
pub async fn lookup(
    db: &Db,
    keys: &ServerKey,
    cache: &TokenCache,
    token: &str,
) -> Result<Result<PresentedToken, Rejection>, sqlx::Error> {
    let Ok(macaroon) = Macaroon::from_token(token) else {
        return Ok(Err(Rejection::Unknown));
    };
    let Ok(id) = std::str::from_utf8(macaroon.identifier()) else {
        return Ok(Err(Rejection::Unknown));
    };
    if uuid::Uuid::parse_str(id).is_err() {
        return Ok(Err(Rejection::Unknown));
    }
    let id = id.to_owned();
    let epoch = cache.epoch();
    if let Some(row) = cache.get(&id) {
        return Ok(Ok(PresentedToken { id, macaroon, row }));
    }
    type Row = (String, String, String, Vec<u8>, String, i64, i64, i64);
    let row: Option<Row> = sqlx::query_as(
        "SELECT m.user_id, m.description, m.caveats, m.key, u.username, u.is_admin, u.is_active, m.read_only \
         FROM macaroons m JOIN users u ON u.id = m.user_id WHERE m.id = $1",
    )
    .bind(&id)
    .fetch_optional(db.pool())
    .await?;
    let Some((user_id, description, caveats, key, username, is_admin, is_active, read_only)) = row
    else {
        let deleted: Option<(String, String, Vec<u8>)> =
            sqlx::query_as("SELECT user_id, description, key FROM deleted_macaroons WHERE id = $1")
                .bind(&id)
                .fetch_optional(db.pool())
                .await?;
        let deleted = deleted.and_then(|(user_id, description, sealed)| {
            Some((user_id, description, open_key(keys, &id, &sealed)?))
        });
        return Ok(Err(match deleted {
            Some((user_id, description, key)) if macaroon.signature_matches(&key) => {
                Rejection::Deleted {
                    id,
                    user_id,
                    description,
                }
            }
            _ => Rejection::Unknown,
        }));
    };
    let Some(key) = open_key(keys, &id, &key) else {
        return Ok(Err(Rejection::Unknown));
    };
    let row = Arc::new(TokenRow {
        user: User {
            id: user_id,
            username,
            is_admin: is_admin != 0,
            is_active: is_active != 0,
        },
        description,
        key,
        stored_caveats: serde_json::from_str(&caveats).unwrap_or_default(),
        read_only: read_only != 0,
    });
    cache.insert(&id, row.clone(), epoch);
    Ok(Ok(PresentedToken { id, macaroon, row }))
}

impl PresentedToken {
    pub fn user(&self) -> &User {
        &self.row.user
    }

    pub fn description(&self) -> &str {
        &self.row.description
    }

    /// A read-only token: it may read the index, never upload.
    pub fn is_read_only(&self) -> bool {
        self.row.read_only
    }

    /// The cached row this token was checked against (a read pass is kept only while the
    /// cache still holds this very row).
    pub fn row(&self) -> &Arc<TokenRow> {
        &self.row
    }

    /// Checks only the signature chain: cheap, and possible before the project is known.
    pub fn check_signature(&self) -> Result<(), Rejection> {
        if self.macaroon.signature_matches(&self.row.key) {
            Ok(())
        } else {
            Err(Rejection::Invalid(
                wharf_macaroon::VerifyError::SignatureMismatch.to_string(),
            ))
        }
    }

    /// Checks the signature chain and every caveat (presented and stored) for a request on
    /// `project` at `now_secs`.
    pub fn verify(&self, project: Option<&Project>, now_secs: i64) -> Result<(), Rejection> {
        let project = project.map(|p| ProjectRef {
            normalized_name: &p.normalized_name,
            id: &p.id,
        });
        let context = Context {
            now: now_secs,
            user_id: &self.row.user.id,
            project,
            publisher: None,
        };
        wharf_macaroon::verify(
            &self.macaroon,
            &self.row.key,
            &self.row.stored_caveats,
            &context,
        )
        .map_err(|e| Rejection::Invalid(e.to_string()))
    }

    /// Records the successful use: `last_used`, and a line of the token's usage trail, in the
    /// transaction of the upload it authenticated.
    pub async fn touch(
        &self,
        conn: &mut sqlx::AnyConnection,
        events: &mut events::Batch<'_>,
        project: &str,
        now_micros: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE macaroons SET last_used = $1 WHERE id = $2")
            .bind(now_micros)
            .bind(&self.id)
            .execute(&mut *conn)
            .await?;
        events.add(
            Source::User(&self.row.user.id),
            EventTag::AccountApiTokenUsed,
            serde_json::json!({"macaroon_id": self.id, "description": self.row.description, "project": project}),
        );
        Ok(())
    }
}

/// Why a token is deleted: by its owner, by itself (a leaked CI secret), or for a leak report.
pub enum Removal<'a> {
    ByOwner,
    SelfRevoked,
    Leaked {
        public_url: &'a str,
        origin: &'a str,
    },
}

/// Moves a token's row to `deleted_macaroons` (its key kept, so a later use is recognised)
/// and logs the revocation for the other processes, inside the caller's transaction. Returns
/// the projects it was limited to that still exist (by id: not a later project that took a
/// deleted one's name), or `None` when the token was gone already. The caller records the
/// events and, after the commit, drops this process's cached copy (`cache.forget`).
pub(crate) async fn revoke_in(
    conn: &mut sqlx::AnyConnection,
    token_id: &str,
    now_micros: i64,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let projects: Vec<(String,)> = sqlx::query_as(
        "SELECT p.id FROM macaroon_projects mp JOIN projects p ON p.id = mp.project_id \
         WHERE mp.macaroon_id = $1",
    )
    .bind(token_id)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO deleted_macaroons (id, user_id, description, key, deleted) \
         SELECT id, user_id, description, key, $2 FROM macaroons WHERE id = $1",
    )
    .bind(token_id)
    .bind(now_micros)
    .execute(&mut *conn)
    .await?;
    let deleted = sqlx::query("DELETE FROM macaroons WHERE id = $1")
        .bind(token_id)
        .execute(&mut *conn)
        .await?;
    if deleted.rows_affected() == 0 {
        return Ok(None);
    }
    cache::log_revocation(conn, token_id, now_micros).await?;
    Ok(Some(projects.into_iter().map(|(id,)| id).collect()))
}

/// Deletes the token and records `account:api_token:removed` (or `…:removed_leak`) on its
/// owner's log and `project:api_token:removed` on each project it was limited to.
pub async fn delete<'a>(
    deps: impl Into<Deps<'a>>,
    token: &TokenInfo,
    removal: Removal<'_>,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<bool, sqlx::Error> {
    let deps = deps.into();
    let mut tx = deps.db.begin().await?;
    let Some(projects) = revoke_in(&mut tx, &token.id, now_micros).await? else {
        return Ok(false);
    };
    let (tag, additional) = match removal {
        Removal::ByOwner => (
            EventTag::AccountApiTokenRemoved,
            serde_json::json!({"macaroon_id": token.id, "description": token.description}),
        ),
        Removal::SelfRevoked => (
            EventTag::AccountApiTokenRemoved,
            serde_json::json!({"macaroon_id": token.id, "description": token.description, "reason": "revoked with the token itself"}),
        ),
        Removal::Leaked { public_url, origin } => (
            EventTag::AccountApiTokenRemovedLeak,
            serde_json::json!({
                "macaroon_id": token.id, "description": token.description, "public_url": public_url,
                "origin": origin, "permissions": {"projects": token.projects},
            }),
        ),
    };
    events::record(
        &mut tx,
        Source::User(&token.user_id),
        tag,
        meta,
        now_micros,
        additional,
    )
    .await?;
    for project_id in projects {
        events::record(
            &mut tx,
            Source::Project(&project_id),
            EventTag::ProjectApiTokenRemoved,
            meta,
            now_micros,
            serde_json::json!({"description": token.description, "user": token.username}),
        )
        .await?;
    }
    tx.commit().await?;
    deps.cache.forget(&token.id);
    Ok(true)
}

/// Tells owners about their tokens that expire within a week (once per token).
pub async fn notify_expiring<'a>(deps: impl Into<Deps<'a>>) -> Result<usize, sqlx::Error> {
    let deps = deps.into();
    let expiring = take_expiring_soon(deps.db, deps.clock.now_micros()).await?;
    for token in &expiring {
        let expires = token
            .expires
            .map(|e| crate::clock::iso8601_seconds(e).replace('T', " ") + " UTC");
        leaks::notify(
            deps,
            token,
            "token-expiring",
            minijinja::context! { expires => expires },
            &RequestMeta::default(),
        )
        .await;
    }
    Ok(expiring.len())
}

/// E-mails the owner that a token was created (PyPI sends none, warehouse#13234).
pub async fn notify_created<'a>(
    deps: impl Into<Deps<'a>>,
    user_id: &str,
    description: &str,
    meta: &RequestMeta,
) {
    let deps = deps.into();
    let Ok(listed) = list_for_user(deps.db, user_id).await else {
        return;
    };
    let Some(token) = listed.into_iter().find(|t| t.description == description) else {
        return;
    };
    let expires = token
        .expires
        .map(|e| crate::clock::iso8601_seconds(e).replace('T', " ") + " UTC");
    leaks::notify(
        deps,
        &token,
        "token-created",
        minijinja::context! { expires => expires },
        meta,
    )
    .await;
}
