//! `/metrics` in Prometheus' text format, and the copy each process keeps of it.

use std::sync::Arc;

use super::store::{Figures, compute};
use crate::db::Db;
use crate::error::AppError;

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
    pub async fn get_or_render(&self, db: &Db, now_micros: i64) -> Result<Arc<String>, AppError> {
        let mut rendered = self.rendered.lock().await;
        let now = now_micros;
        if let Some((at, body)) = rendered.as_ref()
            && now - at < METRICS_TTL_SECS * 1_000_000
        {
            return Ok(body.clone());
        }
        let body = Arc::new(render_metrics(&compute(db).await?));
        *rendered = Some((now, body.clone()));
        Ok(body)
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
