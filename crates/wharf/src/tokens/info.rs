//! Tokens as their owners and a project's Owners see them (never the secret), and the
//! queries that list them.

use crate::db::Db;
use crate::packaging::Project;

/// A token as its owner (or a project's Owners) may see it: never its secret.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub description: String,
    /// The projects it is limited to; empty for the whole account.
    pub projects: Vec<String>,
    pub created: i64,
    pub expires: Option<i64>,
    pub last_used: Option<i64>,
    /// Reads the index, never uploads.
    pub read_only: bool,
}

crate::site::template_value!(TokenInfo);

pub(super) type InfoRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
);

pub(super) const INFO_SELECT: &str = "SELECT m.id, m.user_id, u.username, m.description, m.permissions_caveat, \
     m.created, m.expires, m.last_used, m.read_only FROM macaroons m JOIN users u ON u.id = m.user_id";

pub(super) fn info_from_row(row: InfoRow) -> TokenInfo {
    let (id, user_id, username, description, permissions, created, expires, last_used, read_only) =
        row;
    let permissions: serde_json::Value = serde_json::from_str(&permissions).unwrap_or_default();
    let projects = permissions["permissions"]["projects"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    TokenInfo {
        id,
        user_id,
        username,
        description,
        projects,
        created,
        expires,
        last_used,
        read_only: read_only != 0,
    }
}

pub async fn list_for_user(db: &Db, user_id: &str) -> Result<Vec<TokenInfo>, sqlx::Error> {
    let sql = format!("{INFO_SELECT} WHERE m.user_id = $1 ORDER BY m.created DESC");
    let rows: Vec<InfoRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(info_from_row).collect())
}

pub async fn find(db: &Db, id: &str) -> Result<Option<TokenInfo>, sqlx::Error> {
    let sql = format!("{INFO_SELECT} WHERE m.id = $1");
    let row: Option<InfoRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(info_from_row))
}

/// Every token that can upload to the project (read-only tokens cannot): the ones limited to it (by id, so a project
/// re-created under a deleted one's name does not list the old project's tokens, which its
/// ProjectId caveat refuses anyway), and the account-wide tokens of its collaborators
/// (warehouse#6263).
pub async fn for_project(db: &Db, project: &Project) -> Result<Vec<TokenInfo>, sqlx::Error> {
    let sql = format!(
        "{INFO_SELECT} WHERE m.read_only = 0 AND (m.id IN (SELECT macaroon_id FROM macaroon_projects WHERE project_id = $1) \
            OR (m.permissions_caveat NOT LIKE '%\"projects\"%' \
                AND m.user_id IN (SELECT user_id FROM roles WHERE project_id = $2))) \
         ORDER BY u.username, m.created DESC"
    );
    let rows: Vec<InfoRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&project.id)
        .bind(&project.id)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(info_from_row).collect())
}

/// Tokens that expire within a week and whose owner has not been told yet; marks them told.
pub async fn take_expiring_soon(db: &Db, now_micros: i64) -> Result<Vec<TokenInfo>, sqlx::Error> {
    let week = 7 * 86_400 * 1_000_000;
    let sql = format!(
        "{INFO_SELECT} WHERE m.expires IS NOT NULL AND m.expires > $1 AND m.expires <= $2 \
         AND m.expiry_notified = 0"
    );
    let rows: Vec<InfoRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now_micros)
        .bind(now_micros + week)
        .fetch_all(db.pool())
        .await?;
    let mut told = Vec::new();
    for token in rows.into_iter().map(info_from_row) {
        // Conditional: when several processes look at once, one of them sends the notice.
        let claimed = sqlx::query(
            "UPDATE macaroons SET expiry_notified = 1 WHERE id = $1 AND expiry_notified = 0",
        )
        .bind(&token.id)
        .execute(db.pool())
        .await?;
        if claimed.rows_affected() == 1 {
            told.push(token);
        }
    }
    Ok(told)
}
