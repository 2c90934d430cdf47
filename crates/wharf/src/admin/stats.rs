//! The figures PyPI's team reported by hand: sign-ins per month and the share that used 2FA,
//! by method; accounts with 2FA; tokens scoped to projects against account-wide ones; uploads
//! by token; failed sign-ins and token uses; rate-limit refusals. From the audit log.

use std::collections::BTreeMap;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Serialize;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::db::{Backend, Db};
use crate::error::AppError;
use crate::web::Web;

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

crate::web::template_value!(Month, Figures);

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

/// Bars of sign-ins per month, the part with 2FA darker: an SVG for sighted readers, next to
/// the table that says the same for everyone.
fn chart(months: &[Month]) -> String {
    let (width, height, pad) = (640.0, 220.0, 30.0);
    let max = months.iter().map(|m| m.sign_ins).max().unwrap_or(0).max(1) as f64;
    let slot = (width - 2.0 * pad) / months.len().max(1) as f64;
    let mut bars = String::new();
    for (i, m) in months.iter().enumerate() {
        let x = pad + i as f64 * slot + slot * 0.15;
        let w = slot * 0.7;
        let all = (height - 2.0 * pad) * m.sign_ins as f64 / max;
        let with = (height - 2.0 * pad) * m.with_2fa as f64 / max;
        let base = height - pad;
        bars.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{all:.1}\" fill=\"#9fb8d6\"/>\
             <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{with:.1}\" fill=\"#14365c\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#1a1a1a\">{}</text>",
            base - all,
            base - with,
            x + w / 2.0,
            height - 10.0,
            crate::error::html_escape(&m.month)
        ));
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-labelledby=\"chart-title chart-desc\"><title id=\"chart-title\">Sign-ins per month</title>\
         <desc id=\"chart-desc\">Light bars: all sign-ins; dark part: sign-ins with two-factor authentication. \
         The table beside gives the numbers.</desc>\
         <line x1=\"{pad}\" y1=\"{base}\" x2=\"{end}\" y2=\"{base}\" stroke=\"#4a4a4a\"/>{bars}</svg>",
        base = height - pad,
        end = width - pad,
    )
}

pub async fn page(web: Web) -> Response {
    if let Err(response) = super::require_admin(&web) {
        return response;
    }
    match compute(&web.state.db).await {
        Ok(figures) => {
            let svg = minijinja::Value::from_safe_string(chart(&figures.months));
            web.render(
                "admin_stats.html",
                context! { figures => figures, chart => svg },
            )
        }
        Err(e) => web.error(e.into()),
    }
}

/// How long `/metrics` is served from memory before it is computed again.
pub const METRICS_TTL_SECS: i64 = 60;

/// `/metrics` as last rendered by this process: a scraper every few seconds (or anyone, where
/// it is open) costs the database one computation a minute. Concurrent requests for a stale
/// copy wait for one computation instead of each running their own.
#[derive(Debug, Default)]
pub struct MetricsCache {
    rendered: tokio::sync::Mutex<Option<(i64, Arc<String>)>>,
}

impl MetricsCache {
    async fn get_or_render(&self, state: &AppState) -> Result<Arc<String>, sqlx::Error> {
        let mut rendered = self.rendered.lock().await;
        let now = state.clock.now_micros();
        if let Some((at, body)) = rendered.as_ref()
            && now - at < METRICS_TTL_SECS * 1_000_000
        {
            return Ok(body.clone());
        }
        let body = Arc::new(render_metrics(&compute(&state.db).await?));
        *rendered = Some((now, body.clone()));
        Ok(body)
    }
}

/// Whether the request may read `/metrics`: always where no `metrics_token` is set, else only
/// with `Authorization: Bearer <metrics_token>`.
fn metrics_allowed(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, given)| given.trim());
    let Some(given) = given else {
        return false;
    };
    // Digests compared in constant time: neither the token's bytes nor its length show.
    Sha256::digest(given.as_bytes())
        .ct_eq(&Sha256::digest(token.as_bytes()))
        .into()
}

/// The same figures in Prometheus' text format (all time; aggregates only, nothing personal).
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !metrics_allowed(state.settings.metrics_token.as_deref(), &headers) {
        return AppError::new(
            StatusCode::UNAUTHORIZED,
            "/metrics needs the metrics token: send Authorization: Bearer <metrics_token>",
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"metrics\""),
        )
        .into_response();
    }
    match state.metrics.get_or_render(&state).await {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body.as_str().to_owned(),
        )
            .into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

fn render_metrics(figures: &Figures) -> String {
    let t = &figures.total;
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, samples: &[(&str, f64)]| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    metric(
        "wharf_sign_ins_total",
        "Successful sign-ins, by second factor.",
        "counter",
        &[
            (
                "{two_factor_method=\"none\"}",
                (t.sign_ins - t.with_2fa) as f64,
            ),
            ("{two_factor_method=\"totp\"}", t.totp as f64),
            (
                "{two_factor_method=\"security_key\"}",
                t.security_key as f64,
            ),
            ("{two_factor_method=\"passkey\"}", t.passkey as f64),
            (
                "{two_factor_method=\"recovery_code\"}",
                t.recovery_code as f64,
            ),
        ],
    );
    metric(
        "wharf_accounts",
        "Accounts.",
        "gauge",
        &[("", figures.accounts as f64)],
    );
    metric(
        "wharf_accounts_with_2fa",
        "Accounts with a second factor.",
        "gauge",
        &[("", figures.accounts_with_2fa as f64)],
    );
    metric(
        "wharf_api_tokens_created_total",
        "API tokens created, by scope.",
        "counter",
        &[
            ("{scope=\"project\"}", t.tokens_project as f64),
            ("{scope=\"account\"}", t.tokens_account as f64),
        ],
    );
    metric(
        "wharf_uploads_by_token_total",
        "Files uploaded with an API token.",
        "counter",
        &[("", t.uploads_by_token as f64)],
    );
    metric(
        "wharf_failed_sign_ins_total",
        "Failed sign-ins.",
        "counter",
        &[("", t.failed_sign_ins as f64)],
    );
    metric(
        "wharf_failed_token_uses_total",
        "Refused uses of API tokens.",
        "counter",
        &[("", t.failed_token_uses as f64)],
    );
    metric(
        "wharf_rate_limit_refusals_total",
        "Requests refused by a rate limit.",
        "counter",
        &[("", t.rate_limit_refusals as f64)],
    );
    out
}
