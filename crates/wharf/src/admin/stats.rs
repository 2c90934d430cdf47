//! The figures PyPI's team reported by hand: sign-ins per month and the share that used 2FA,
//! by method; accounts with 2FA; tokens scoped to projects against account-wide ones; uploads
//! by token; failed sign-ins and token uses; rate-limit refusals. From the audit log.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::store::{Figures, Month, compute};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::{Page, Web};

crate::site::template_value!(Month, Figures);

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

pub async fn page(web: Web) -> Page {
    super::require_admin(&web)?;
    let figures = compute(&web.state.db)
        .await
        .map_err(|e| web.error(e.into()))?;
    let svg = minijinja::Value::from_safe_string(chart(&figures.months));
    Ok(web.render(
        "admin_stats.html",
        context! { figures => figures, chart => svg },
    ))
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
    match state
        .metrics
        .get_or_render(&state.db, state.clock.now_micros())
        .await
    {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            // The figures from the database (cached a minute), then this process's own.
            format!("{body}{}", crate::observe::live_metrics(&state).await),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
