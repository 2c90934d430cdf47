//! The figures PyPI's team reported by hand: sign-ins per month and the share that used 2FA,
//! by method; accounts with 2FA; tokens scoped to projects against account-wide ones; uploads
//! by token; failed sign-ins and token uses; rate-limit refusals. From the audit log.

use std::collections::BTreeMap;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Serialize;
use serde_json::Value;

use crate::db::Db;
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

pub async fn compute(db: &Db) -> Result<Figures, sqlx::Error> {
    let sql =
        format!("SELECT time, tag, additional FROM events WHERE tag IN ({TAGS}) ORDER BY time");
    let rows: Vec<(i64, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(db.pool())
        .await?;
    let mut months: BTreeMap<String, Month> = BTreeMap::new();
    for (time, tag, additional) in rows {
        let month_key = crate::clock::iso8601_seconds(time)[..7].to_owned();
        let m = months.entry(month_key.clone()).or_insert_with(|| Month {
            month: month_key,
            ..Month::default()
        });
        let additional: Value = serde_json::from_str(&additional).unwrap_or_default();
        match tag.as_str() {
            "account:login:success" => {
                m.sign_ins += 1;
                match additional["two_factor_method"].as_str() {
                    Some("totp") => m.totp += 1,
                    Some("webauthn") => m.security_key += 1,
                    Some("passkey") => m.passkey += 1,
                    Some("recovery-code") => m.recovery_code += 1,
                    _ => {}
                }
            }
            "account:login:failure" => m.failed_sign_ins += 1,
            "account:api_token:added" => {
                let scoped = additional["caveats"].as_array().is_some_and(|caveats| {
                    caveats
                        .iter()
                        .any(|c| c.get(0).and_then(Value::as_i64) == Some(1))
                });
                if scoped {
                    m.tokens_project += 1;
                } else {
                    m.tokens_account += 1;
                }
            }
            "file:add" => m.uploads_by_token += 1,
            "account:api_token:failure" => {
                m.failed_token_uses += 1 + additional["similar_failures_not_logged"]
                    .as_u64()
                    .unwrap_or(0);
            }
            "upload:auth:failure" if additional["reason"] == "unknown_token" => {
                m.failed_token_uses += 1
            }
            "ratelimit:refused" => m.rate_limit_refusals += 1,
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
    let (accounts,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(db.pool())
        .await?;
    let (accounts_with_2fa,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM users u WHERE u.totp_secret IS NOT NULL \
            OR EXISTS (SELECT 1 FROM webauthn_credentials w WHERE w.user_id = u.id)",
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

/// The same figures in Prometheus' text format (all time; aggregates only, nothing personal).
pub async fn metrics(
    axum::extract::State(state): axum::extract::State<crate::app::AppState>,
) -> Response {
    let figures = match compute(&state.db).await {
        Ok(figures) => figures,
        Err(e) => return crate::error::AppError::from(e).into_response(),
    };
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
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
