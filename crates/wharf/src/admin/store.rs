//! The adoption figures' queries: events counted by month, tag and detail, and the accounts
//! with a second factor.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::db::{Backend, Db};

#[derive(Clone, Debug, Default, Serialize)]
pub struct Month {
    pub month: String,
    pub sign_ins: u64,
    pub with_2fa: u64,
    /// Percent of sign-ins with a second factor (or a passkey), one decimal.
    pub share_2fa: f64,
    pub totp: u64,
    pub security_key: u64,
    pub passkey: u64,
    pub recovery_code: u64,
    pub failed_sign_ins: u64,
    pub tokens_project: u64,
    pub tokens_account: u64,
    pub uploads_by_token: u64,
    pub failed_token_uses: u64,
    pub rate_limit_refusals: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    pub months: Vec<Month>,
    pub total: Month,
    pub accounts: i64,
    pub accounts_with_2fa: i64,
}

const TAGS: &str = "'account:login:success', 'account:login:failure', 'account:api_token:added', \
     'file:add', 'account:api_token:failure', 'upload:auth:failure', 'ratelimit:refused'";

/// The figures' events counted by the database, grouped by month, tag and the one detail a
/// figure needs (the second factor, the token's scope, the refusal's reason): a few dozen rows
/// however long the log is. `extra` adds the failures an aggregated event stands for.
fn figures_sql(db: &Db) -> String {
    let (month, detail, extra) = match db.backend() {
        Backend::Sqlite => (
            "strftime('%Y-%m', time / 1000000, 'unixepoch')",
            "CASE tag \
               WHEN 'account:login:success' THEN json_extract(additional, '$.two_factor_method') \
               WHEN 'account:api_token:added' THEN CASE \
                 WHEN json_type(additional, '$.caveats') <> 'array' THEN 'account' \
                 WHEN EXISTS (SELECT 1 FROM json_each(additional, '$.caveats') c \
                   WHERE c.type = 'array' AND json_extract(additional, c.fullkey || '[0]') = 1) \
                 THEN 'project' ELSE 'account' END \
               WHEN 'upload:auth:failure' THEN json_extract(additional, '$.reason') END",
            "CASE WHEN tag = 'account:api_token:failure' \
               THEN COALESCE(json_extract(additional, '$.similar_failures_not_logged'), 0) ELSE 0 END",
        ),
        Backend::Postgres => (
            "to_char(to_timestamp(time / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM')",
            "CASE tag \
               WHEN 'account:login:success' THEN additional::jsonb ->> 'two_factor_method' \
               WHEN 'account:api_token:added' THEN CASE WHEN EXISTS (\
                 SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(additional::jsonb -> 'caveats') = 'array' \
                   THEN additional::jsonb -> 'caveats' ELSE '[]'::jsonb END) c \
                 WHERE jsonb_typeof(c) = 'array' AND c ->> 0 = '1') \
                 THEN 'project' ELSE 'account' END \
               WHEN 'upload:auth:failure' THEN additional::jsonb ->> 'reason' END",
            "CASE WHEN tag = 'account:api_token:failure' \
               THEN COALESCE((additional::jsonb ->> 'similar_failures_not_logged')::bigint, 0) ELSE 0 END",
        ),
    };
    format!(
        "SELECT month, tag, detail, COUNT(*), CAST(SUM(extra) AS BIGINT) FROM (\
           SELECT {month} AS month, tag, {detail} AS detail, {extra} AS extra \
           FROM events WHERE tag IN ({TAGS})) e \
         GROUP BY month, tag, detail"
    )
}

pub async fn compute(db: &Db) -> Result<Figures, sqlx::Error> {
    let rows: Vec<(String, String, Option<String>, i64, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(figures_sql(db)))
            .fetch_all(db.pool())
            .await?;
    let mut months: BTreeMap<String, Month> = BTreeMap::new();
    for (month_key, tag, detail, count, extra) in rows {
        let m = months.entry(month_key.clone()).or_insert_with(|| Month {
            month: month_key,
            ..Month::default()
        });
        let count = count as u64;
        match tag.as_str() {
            "account:login:success" => {
                m.sign_ins += count;
                match detail.as_deref() {
                    Some("totp") => m.totp += count,
                    Some("webauthn") => m.security_key += count,
                    Some("passkey") => m.passkey += count,
                    Some("recovery-code") => m.recovery_code += count,
                    _ => {}
                }
            }
            "account:login:failure" => m.failed_sign_ins += count,
            "account:api_token:added" if detail.as_deref() == Some("project") => {
                m.tokens_project += count
            }
            "account:api_token:added" => m.tokens_account += count,
            "file:add" => m.uploads_by_token += count,
            "account:api_token:failure" => m.failed_token_uses += count + extra as u64,
            "upload:auth:failure" if detail.as_deref() == Some("unknown_token") => {
                m.failed_token_uses += count
            }
            "ratelimit:refused" => m.rate_limit_refusals += count,
            _ => {}
        }
    }
    let mut total = Month {
        month: "All".to_owned(),
        ..Month::default()
    };
    let mut list: Vec<Month> = months.into_values().collect();
    for m in &mut list {
        m.with_2fa = m.totp + m.security_key + m.passkey + m.recovery_code;
        m.share_2fa = share(m.with_2fa, m.sign_ins);
        total.sign_ins += m.sign_ins;
        total.with_2fa += m.with_2fa;
        total.totp += m.totp;
        total.security_key += m.security_key;
        total.passkey += m.passkey;
        total.recovery_code += m.recovery_code;
        total.failed_sign_ins += m.failed_sign_ins;
        total.tokens_project += m.tokens_project;
        total.tokens_account += m.tokens_account;
        total.uploads_by_token += m.uploads_by_token;
        total.failed_token_uses += m.failed_token_uses;
        total.rate_limit_refusals += m.rate_limit_refusals;
    }
    total.share_2fa = share(total.with_2fa, total.sign_ins);
    let (accounts, accounts_with_2fa): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN u.totp_secret IS NOT NULL \
            OR EXISTS (SELECT 1 FROM webauthn_credentials w WHERE w.user_id = u.id) \
            THEN 1 ELSE 0 END), 0) AS BIGINT) FROM users u",
    )
    .fetch_one(db.pool())
    .await?;
    Ok(Figures {
        months: list,
        total,
        accounts,
        accounts_with_2fa,
    })
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

/// One project in the admins' list.
#[derive(Clone, Debug, Serialize)]
pub struct ProjectRow {
    pub name: String,
    pub normalized_name: String,
    pub created: i64,
    pub releases: i64,
    pub files: i64,
    pub total_size: i64,
    pub upload_limit: Option<i64>,
    /// The Owners' usernames, comma-separated.
    pub owners: String,
}

crate::site::template_value!(ProjectRow);

const PROJECT_WHERE: &str = "WHERE ($1 = '' OR p.normalized_name LIKE $2 ESCAPE '\\')";

/// One page of the projects whose normalized name contains `search`, by name, and how many
/// match.
pub async fn projects(
    db: &Db,
    search: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ProjectRow>, i64), sqlx::Error> {
    let normalized = wharf_packaging::name::normalize(search.trim());
    let pattern = format!(
        "%{}%",
        normalized
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM projects p {PROJECT_WHERE}"
    )))
    .bind(&normalized)
    .bind(&pattern)
    .fetch_one(db.pool())
    .await?;
    type Row = (String, String, i64, i64, i64, i64, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT p.name, p.normalized_name, p.created, \
           (SELECT COUNT(*) FROM releases r WHERE r.project_id = p.id), \
           (SELECT COUNT(*) FROM files f JOIN releases r ON r.id = f.release_id WHERE r.project_id = p.id), \
           p.total_size, p.upload_limit \
         FROM projects p {PROJECT_WHERE} ORDER BY p.normalized_name LIMIT $3 OFFSET $4"
    )))
    .bind(&normalized)
    .bind(&pattern)
    .bind(limit)
    .bind(offset.max(0))
    .fetch_all(db.pool())
    .await?;
    let mut listed = Vec::with_capacity(rows.len());
    for (name, normalized_name, created, releases, files, total_size, upload_limit) in rows {
        let owners: Vec<(String,)> = sqlx::query_as(
            "SELECT u.username FROM roles ro JOIN users u ON u.id = ro.user_id \
             JOIN projects p ON p.id = ro.project_id \
             WHERE p.normalized_name = $1 AND ro.role_name = 'Owner' ORDER BY u.username_key",
        )
        .bind(&normalized_name)
        .fetch_all(db.pool())
        .await?;
        listed.push(ProjectRow {
            name,
            normalized_name,
            created,
            releases,
            files,
            total_size,
            upload_limit,
            owners: owners
                .into_iter()
                .map(|(n,)| n)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok((listed, total))
}
