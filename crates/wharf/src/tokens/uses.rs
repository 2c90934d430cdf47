//! A token's usage trail, read from the events its owner's account records for it.

use serde::Serialize;

use crate::db::Db;

/// One use of a token: a request it authorized, or one it was refused for.
#[derive(Clone, Debug, Serialize)]
pub struct Use {
    pub time: i64,
    pub tag: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub project: Option<String>,
    pub reason: Option<String>,
}

type UseRow = (i64, String, Option<String>, Option<String>, String);

/// The last 100 successful and refused uses of the token `token_id` of `user_id`, newest
/// first (warehouse#6441).
pub async fn uses(db: &Db, user_id: &str, token_id: &str) -> Result<Vec<Use>, sqlx::Error> {
    let rows: Vec<UseRow> = sqlx::query_as(
        "SELECT time, tag, ip_address, user_agent, additional FROM events \
         WHERE source_type = 'user' AND source_id = $1 \
           AND tag IN ('account:api_token:used', 'account:api_token:failure') AND additional LIKE $2 \
         ORDER BY id DESC LIMIT 100",
    )
    .bind(user_id)
    .bind(format!("%\"macaroon_id\":\"{token_id}\"%"))
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(time, tag, ip_address, user_agent, additional)| {
            let additional: serde_json::Value =
                serde_json::from_str(&additional).unwrap_or_default();
            Use {
                time,
                tag,
                ip_address,
                user_agent,
                project: additional["project"].as_str().map(str::to_owned),
                reason: additional["reason"].as_str().map(str::to_owned),
            }
        })
        .collect())
}
