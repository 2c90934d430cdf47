//! A token's life besides creation and deletion: bulk invalidation (the tokens a selection
//! matches, revoked in one transaction, for `admin::actions::invalidate_tokens`, behind
//! `wharf token invalidate` and `/admin/tokens/`) and rotation (a new token with the same
//! name and scope, the old one kept for a grace period: "Replace this token" on its page).
//!
//! Both end or change old tokens the way deletion does: the row goes to `deleted_macaroons`,
//! or its stored caveats change, and `token_revocations` tells every process to drop its
//! cached copy (within `cache_refresh_ms`; this process at once).

use minijinja::context;
use sqlx::AnyConnection;
use wharf_macaroon::Caveat;

use super::{Deps, Issuer, TokenError, TokenInfo, TokenScope, cache, info};
use crate::accounts::User;
use crate::db::Db;
use crate::events::{self, EventTag, RequestMeta, Source};
use crate::packaging::Project;

/// The tokens a bulk invalidation takes: those that match every filter given. No filter at
/// all matches every token (the caller asks for `--all` explicitly).
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub user_id: Option<String>,
    /// The tokens limited to the project (by id, of either kind), and the account-wide
    /// upload tokens of its collaborators: every token that can upload to it.
    pub project_id: Option<String>,
    /// Created strictly before this time (unix micros).
    pub created_before: Option<i64>,
}

enum Param {
    Text(String),
    Int(i64),
}

/// The tokens `selection` matches, by owner and then age, read in the caller's transaction.
pub async fn matching(
    conn: &mut AnyConnection,
    selection: &Selection,
) -> Result<Vec<TokenInfo>, sqlx::Error> {
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    fn next(params: &mut Vec<Param>, param: Param) -> String {
        params.push(param);
        format!("${}", params.len())
    }
    if let Some(user_id) = &selection.user_id {
        let p = next(&mut params, Param::Text(user_id.clone()));
        conditions.push(format!("m.user_id = {p}"));
    }
    if let Some(project_id) = &selection.project_id {
        let limited = next(&mut params, Param::Text(project_id.clone()));
        let collaborator = next(&mut params, Param::Text(project_id.clone()));
        conditions.push(format!(
            "(m.id IN (SELECT macaroon_id FROM macaroon_projects WHERE project_id = {limited}) \
             OR (m.read_only = 0 AND m.permissions_caveat NOT LIKE '%\"projects\"%' \
                 AND m.user_id IN (SELECT user_id FROM roles WHERE project_id = {collaborator})))"
        ));
    }
    if let Some(before) = selection.created_before {
        let p = next(&mut params, Param::Int(before));
        conditions.push(format!("m.created < {p}"));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "{}{filter} ORDER BY u.username, m.created, m.id",
        info::INFO_SELECT
    );
    let mut query = sqlx::query_as::<_, info::InfoRow>(sqlx::AssertSqlSafe(sql));
    for param in params {
        query = match param {
            Param::Text(text) => query.bind(text),
            Param::Int(value) => query.bind(value),
        };
    }
    let rows = query.fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(info::info_from_row).collect())
}

/// How long a replaced token keeps working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grace {
    /// Revoked at once.
    None,
    OneHour,
    OneDay,
}

impl Grace {
    /// The form's values: `none`, `1h`, `24h`.
    pub fn parse(value: &str) -> Option<Grace> {
        match value.trim() {
            "none" => Some(Grace::None),
            "1h" => Some(Grace::OneHour),
            "24h" => Some(Grace::OneDay),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Grace::None => "none",
            Grace::OneHour => "1h",
            Grace::OneDay => "24h",
        }
    }

    pub fn secs(self) -> i64 {
        match self {
            Grace::None => 0,
            Grace::OneHour => 3600,
            Grace::OneDay => 86_400,
        }
    }
}

/// A token replaced by a new one.
#[derive(Debug)]
pub struct Rotation {
    /// The new token's secret: shown once, never stored.
    pub secret: String,
    pub new_id: String,
    /// The new token's expiry (unix micros), if it expires.
    pub expires: Option<i64>,
    /// When the old token stops working (unix micros); `None`: it was revoked at once.
    pub old_until: Option<i64>,
    /// The old token's name while it lasts: it gave its own to the new token.
    pub old_description: Option<String>,
}

/// The projects a project-scoped token was made for, by id with their current names; `None`
/// when one of them no longer exists (the token cannot be replaced with the same scope).
/// Empty for an account-wide token.
pub async fn projects_of(
    db: &Db,
    token: &TokenInfo,
) -> Result<Option<Vec<(String, String)>>, sqlx::Error> {
    let projects: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.id, p.normalized_name FROM macaroon_projects mp JOIN projects p ON p.id = mp.project_id \
         WHERE mp.macaroon_id = $1 ORDER BY p.normalized_name",
    )
    .bind(&token.id)
    .fetch_all(db.pool())
    .await?;
    Ok((projects.len() == token.projects.len()).then_some(projects))
}

/// Replaces `old` (a token of `user`) with a new token of the same name, scope (`projects`,
/// read-only or not) and lifetime, in one transaction. The old token keeps working for
/// `grace` under a new name, "NAME (replaced, 1a2b3c4d)", then expires (a stored expiry
/// caveat, never later than its own expiry); with `Grace::None` it is revoked at once.
/// Records `account:api_token:added` for the new token (naming the one it `replaces`) and
/// `account:api_token:rotated` for the pair, then tells the owner by e-mail.
#[allow(clippy::too_many_arguments)]
pub async fn rotate(
    deps: Deps<'_>,
    location: &str,
    user: &User,
    old: &TokenInfo,
    projects: &[Project],
    grace: Grace,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<Rotation, TokenError> {
    let mut tx = deps.db.begin().await?;
    // The old token as it is now, still this user's (a deletion that came first wins).
    let row: Option<(String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT description, caveats, created, expires FROM macaroons WHERE id = $1 AND user_id = $2",
    )
    .bind(&old.id)
    .bind(&user.id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((description, caveats, created, expires)) = row else {
        return Err(TokenError::Gone);
    };
    // The same lifetime as the old token was given, from now.
    let expires_in = expires.map(|e| ((e - created + 999_999).div_euclid(1_000_000)).max(1));
    let now_secs = now_micros.div_euclid(1_000_000);
    let mut removed_from = Vec::new();
    let (old_until, old_description) = match grace {
        Grace::None => {
            let Some(projects) = super::revoke_in(&mut tx, &old.id, now_micros).await? else {
                return Err(TokenError::Gone);
            };
            removed_from = projects;
            (None, None)
        }
        Grace::OneHour | Grace::OneDay => {
            let until_secs = expires.map_or(now_secs + grace.secs(), |e| {
                e.div_euclid(1_000_000).min(now_secs + grace.secs())
            });
            let short: String = old.id.chars().take(8).collect();
            let renamed = format!("{description} (replaced, {short})");
            let mut stored: Vec<String> = serde_json::from_str(&caveats).unwrap_or_default();
            stored.push(
                Caveat::Expiration {
                    expires_at: until_secs,
                    not_before: created.div_euclid(1_000_000),
                }
                .to_json(),
            );
            // Renamed first: the new token takes the name. No "expires soon" notice for it.
            sqlx::query(
                "UPDATE macaroons SET description = $1, caveats = $2, expires = $3, expiry_notified = 1 \
                 WHERE id = $4",
            )
            .bind(&renamed)
            .bind(serde_json::to_string(&stored).unwrap_or_default())
            .bind(until_secs * 1_000_000)
            .bind(&old.id)
            .execute(&mut *tx)
            .await?;
            // Every process drops its cached copy, whose caveats are the old ones.
            cache::log_revocation(&mut tx, &old.id, now_micros).await?;
            (Some(until_secs * 1_000_000), Some(renamed))
        }
    };
    let scope = TokenScope {
        projects,
        expires_in,
        read_only: old.read_only,
    };
    let issuer = Issuer {
        db: deps.db,
        keys: deps.keys,
        location,
    };
    let minted = super::insert(
        &mut tx,
        &issuer,
        user,
        &description,
        &scope,
        meta,
        now_micros,
        Some(&old.id),
    )
    .await?;
    let mut batch = events::Batch::new(meta, now_micros);
    batch.add(
        Source::User(&user.id),
        EventTag::AccountApiTokenRotated,
        serde_json::json!({
            "macaroon_id": old.id,
            "description": description,
            "new_macaroon_id": minted.id,
            "grace": grace.as_str(),
            "old_expires": old_until.map(|u| u.div_euclid(1_000_000)),
            "old_revoked": old_until.is_none(),
            "old_description": old_description,
        }),
    );
    for project_id in &removed_from {
        batch.add(
            Source::Project(project_id),
            EventTag::ProjectApiTokenRemoved,
            serde_json::json!({"description": description, "user": user.username, "reason": "replaced"}),
        );
    }
    batch.flush(&mut tx).await?;
    tx.commit().await?;
    deps.cache.forget(&old.id);
    let until = old_until.map(|u| crate::clock::iso8601_seconds(u).replace('T', " ") + " UTC");
    let told = TokenInfo {
        description: description.clone(),
        ..old.clone()
    };
    super::leaks::notify(
        deps,
        &told,
        "token-replaced",
        context! { until => until, old_name => old_description.clone() },
        meta,
    )
    .await;
    Ok(Rotation {
        secret: minted.secret,
        new_id: minted.id,
        expires: expires_in.map(|s| (now_secs + s) * 1_000_000),
        old_until,
        old_description,
    })
}
