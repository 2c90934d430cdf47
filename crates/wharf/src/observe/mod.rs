//! What the server tells its operator about each request: a request id (sent back as
//! `X-Request-Id`) and one access-log line at `info` on the target `wharf::access`.
//!
//! The line never holds a secret: the query's values are left out (reset and invitation
//! links carry their tokens there), and neither `Authorization` nor cookies are read.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::HttpBody as _;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderValue, header};

use crate::config::LogFormat;
use crate::state::AppState;

pub mod counters;

pub const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Request ids: a random prefix per process and a counter, so ids are unique across the
/// processes of a deployment and cost no randomness per request.
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

static IDS: std::sync::LazyLock<RequestIds> = std::sync::LazyLock::new(|| RequestIds {
    prefix: rand::random(),
    next: AtomicU64::new(1),
});

fn new_request_id() -> String {
    let n = IDS.next.fetch_add(1, Ordering::Relaxed);
    let mut id = String::with_capacity(20);
    push_hex(&mut id, u64::from(IDS.prefix), 8);
    push_hex(&mut id, n, 12);
    id
}

/// The low `digits` hex digits of `value` (no `core::fmt` on the request path).
fn push_hex(out: &mut String, value: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((value >> (i * 4)) & 0xf) as usize]));
    }
}

/// A number in decimal (itoa: no `core::fmt` on the request path).
fn push_number(out: &mut String, value: u64) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// The client's address; IPv4 without `core::fmt`.
fn push_ip(out: &mut String, ip: Option<std::net::IpAddr>) {
    match ip {
        None => out.push('-'),
        Some(std::net::IpAddr::V4(v4)) => {
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_number(out, u64::from(*octet));
            }
        }
        Some(other) => {
            let _ = write!(out, "{other}");
        }
    }
}

/// Milliseconds with three decimals, from microseconds.
fn push_millis(out: &mut String, micros: u64) {
    push_number(out, micros / 1000);
    out.push('.');
    let fraction = micros % 1000;
    if fraction < 100 {
        out.push('0');
    }
    if fraction < 10 {
        out.push('0');
    }
    push_number(out, fraction);
}

/// An id a trusted proxy sent along, if it is a plain token (no spaces or quotes that could
/// forge a log field).
fn forwarded_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let plain = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    plain.then(|| text.to_owned())
}

/// The path and the query's keys, without their values: `/account/reset-password/?token=`.
pub fn loggable_path(uri: &axum::http::Uri) -> String {
    let mut path = uri.path().to_owned();
    if let Some(query) = uri.query() {
        path.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                path.push('&');
            }
            let key = pair.split('=').next().unwrap_or_default();
            let _ = write!(path, "{key}=");
        }
    }
    path
}

/// Where access-log lines go, and in which format: set once by `main` (the same writer
/// thread as every other log line). Unset (the tests), lines go through `tracing`.
static ACCESS_LOG: OnceLock<(tracing_appender::non_blocking::NonBlocking, LogFormat)> =
    OnceLock::new();

pub fn init_access_log(writer: tracing_appender::non_blocking::NonBlocking, format: LogFormat) {
    let _ = ACCESS_LOG.set((writer, format));
}

/// One access-log line. Formatted here rather than by `tracing`'s formatter, which cost a
/// request more than its own handling (about 24,000 instructions on a cached page, measured
/// with callgrind): the same fields and layout, in one buffer, then one channel send.
struct AccessLine<'a> {
    request_id: &'a str,
    method: &'a str,
    path: &'a str,
    route: &'a str,
    status: u16,
    bytes: Option<u64>,
    duration_micros: u64,
    client_ip: Option<std::net::IpAddr>,
    user_agent: &'a str,
}

impl AccessLine<'_> {
    fn write(&self) {
        let Some((writer, format)) = ACCESS_LOG.get() else {
            tracing::info!(
                target: "wharf::access",
                request_id = self.request_id,
                method = self.method,
                path = self.path,
                route = self.route,
                status = self.status,
                bytes = self.bytes,
                duration_ms = format_args!("{:.3}", self.duration_micros as f64 / 1000.0),
                client_ip = format_args!("{}", self.client_ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string())),
                user_agent = self.user_agent,
            );
            return;
        };
        let mut line = String::with_capacity(384);
        let mut stamp = String::with_capacity(32);
        timestamp(&mut stamp);
        match format {
            LogFormat::Text => {
                // `tracing`'s text layout: strings quoted and escaped as Rust's Debug does,
                // so a path or user agent cannot forge a field or a line.
                line.push_str(&stamp);
                line.push_str("  INFO wharf::access: request_id=");
                quoted(&mut line, self.request_id);
                line.push_str(" method=");
                quoted(&mut line, self.method);
                line.push_str(" path=");
                quoted(&mut line, self.path);
                line.push_str(" route=");
                quoted(&mut line, self.route);
                line.push_str(" status=");
                push_number(&mut line, u64::from(self.status));
                if let Some(bytes) = self.bytes {
                    line.push_str(" bytes=");
                    push_number(&mut line, bytes);
                }
                line.push_str(" duration_ms=");
                push_millis(&mut line, self.duration_micros);
                line.push_str(" client_ip=\"");
                push_ip(&mut line, self.client_ip);
                line.push_str("\" user_agent=");
                quoted(&mut line, self.user_agent);
                line.push('\n');
            }
            LogFormat::Json => {
                let text = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
                let _ = write!(
                    line,
                    "{{\"timestamp\":{},\"level\":\"INFO\",\"target\":\"wharf::access\",\"request_id\":{},\"method\":{},\"path\":{},\"route\":{},\"status\":{}",
                    text(&stamp),
                    text(self.request_id),
                    text(self.method),
                    text(self.path),
                    text(self.route),
                    self.status
                );
                if let Some(bytes) = self.bytes {
                    let _ = write!(line, ",\"bytes\":{bytes}");
                }
                let mut ip = String::with_capacity(40);
                push_ip(&mut ip, self.client_ip);
                line.push_str(",\"duration_ms\":");
                push_millis(&mut line, self.duration_micros);
                let _ = writeln!(
                    line,
                    ",\"client_ip\":{},\"user_agent\":{}}}",
                    text(&ip),
                    text(self.user_agent)
                );
            }
        }
        let mut writer = writer.clone();
        let _ = std::io::Write::write_all(&mut writer, line.as_bytes());
    }
}

/// `s` in double quotes, escaped as Rust's Debug escapes it; plain text (the usual case) is
/// copied as it is, without the per-character escaping.
fn quoted(out: &mut String, s: &str) {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// Now as RFC 3339 in UTC with microseconds. The date and time of day are formatted once a
/// second per thread; the rest is arithmetic.
fn timestamp(out: &mut String) {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != secs {
            let format =
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
            let formatted = time::OffsetDateTime::from_unix_timestamp(secs as i64)
                .ok()
                .and_then(|t| t.format(&format).ok())
                .unwrap_or_default();
            *cached = (secs, formatted);
        }
        out.push_str(&cached.1);
    });
    let _ = write!(out, ".{:06}Z", now.subsec_micros());
}

/// What the access log needs of the state: a tower layer in front of every route, so that a
/// request costs one `Arc` clone and one boxed future (axum's `from_fn` also clones the
/// state and the inner service per request).
#[derive(Clone)]
pub struct AccessLogLayer {
    observer: Arc<Observer>,
}

struct Observer {
    trusted_proxies: crate::config::TrustedProxies,
    lifecycle: Arc<crate::state::Lifecycle>,
    requests: Arc<counters::RequestCounters>,
}

impl AccessLogLayer {
    pub fn new(state: &AppState) -> AccessLogLayer {
        AccessLogLayer {
            observer: Arc::new(Observer {
                trusted_proxies: state.settings.trusted_proxies.clone(),
                lifecycle: state.lifecycle.clone(),
                requests: state.requests.clone(),
            }),
        }
    }
}

impl<S> tower::Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            observer: self.observer.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
    observer: Arc<Observer>,
}

impl<S, B> tower::Service<Request> for AccessLog<S>
where
    S: tower::Service<Request, Response = axum::http::Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let observer = self.observer.clone();
        let in_flight = observer.lifecycle.request_started();
        let begun = Begun::of(&observer, &request);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            let streamed = begun.file_kind.is_some();
            begun.finish(&observer, &mut response);
            // A download is in flight until its last byte is sent, not when its head is.
            if streamed {
                return Ok(response.map(|body| {
                    axum::body::Body::new(Counted {
                        body: axum::body::Body::new(body),
                        _in_flight: in_flight,
                    })
                }));
            }
            drop(in_flight);
            // As axum would make it for the router (the layers' own body type, boxed once).
            Ok(response.map(axum::body::Body::new))
        })
    }
}

/// A response body that counts its request as in flight until it is dropped.
struct Counted {
    body: axum::body::Body,
    _in_flight: crate::state::InFlight,
}

impl axum::body::HttpBody for Counted {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// What is kept of a request until its answer: the request itself goes to the handler.
struct Begun {
    started: Instant,
    request_id: String,
    method: axum::http::Method,
    path: String,
    route: Option<String>,
    file_kind: Option<counters::FileKind>,
    client_ip: Option<std::net::IpAddr>,
    bytes_in: Option<u64>,
    user_agent: String,
}

impl Begun {
    fn of(observer: &Observer, request: &Request) -> Begun {
        let peer = request
            .extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let trusted_peer =
            peer.is_some_and(|ip| observer.trusted_proxies.contains(ip.to_canonical()));
        let request_id = request
            .headers()
            .get(&REQUEST_ID)
            .filter(|_| trusted_peer)
            .and_then(forwarded_request_id)
            .unwrap_or_else(new_request_id);
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned());
        let file_kind = matches!(
            route.as_deref(),
            Some("/files/{*path}" | "/files/upstream/{*rest}")
        )
        .then(|| counters::FileKind::of(request.uri().path()));
        Begun {
            started: Instant::now(),
            request_id,
            method: request.method().clone(),
            path: loggable_path(request.uri()),
            route,
            file_kind,
            client_ip: crate::request::client_ip(
                peer,
                request.headers(),
                &observer.trusted_proxies,
            ),
            bytes_in: request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .or_else(|| request.body().size_hint().exact()),
            user_agent: request
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .chars()
                .take(256)
                .collect(),
        }
    }

    fn finish<B: axum::body::HttpBody>(
        self,
        observer: &Observer,
        response: &mut axum::http::Response<B>,
    ) {
        if let Ok(value) = HeaderValue::from_str(&self.request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        let bytes = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .or_else(|| response.body().size_hint().exact());
        let elapsed = self.started.elapsed();
        let is_head = self.method == axum::http::Method::HEAD;
        observer.requests.record(&counters::Served {
            route: self.route.as_deref(),
            method: &self.method,
            status: response.status(),
            seconds: elapsed.as_secs_f64(),
            // A HEAD answer's length describes a body that is not sent.
            bytes_out: bytes.filter(|_| !is_head),
            bytes_in: self.bytes_in,
        });
        // Whole files sent (not HEAD, not a range) by what they are.
        if let Some(kind) = self.file_kind
            && response.status() == axum::http::StatusCode::OK
            && !is_head
        {
            observer.requests.file_served(kind);
        }
        if tracing::enabled!(target: "wharf::access", tracing::Level::INFO) {
            AccessLine {
                request_id: &self.request_id,
                method: self.method.as_str(),
                path: &self.path,
                route: self.route.as_deref().unwrap_or("-"),
                status: response.status().as_u16(),
                bytes,
                duration_micros: elapsed.as_micros() as u64,
                client_ip: self.client_ip,
                user_agent: &self.user_agent,
            }
            .write();
        }
    }
}

/// The figures of this process for `/metrics`, read at each scrape: requests, latency,
/// bytes, files, refusals, the page cache, the database pool, the sealer's lag, the build.
pub async fn live_metrics(state: &AppState) -> String {
    let mut out = String::new();
    state.requests.render(&mut out);
    let (hits, misses) = state.cache.hits_and_misses();
    let pool = state.db.pool();
    let (size, idle) = (pool.size() as u64, pool.num_idle() as u64);
    let _ = writeln!(
        out,
        "# HELP wharf_page_cache_requests_total Simple and JSON pages asked of the page cache, by result.\n# TYPE wharf_page_cache_requests_total counter\nwharf_page_cache_requests_total{{result=\"hit\"}} {hits}\nwharf_page_cache_requests_total{{result=\"miss\"}} {misses}"
    );
    let _ = writeln!(
        out,
        "# HELP wharf_db_connections Database pool connections, by state.\n# TYPE wharf_db_connections gauge\nwharf_db_connections{{state=\"in_use\"}} {}\nwharf_db_connections{{state=\"idle\"}} {idle}",
        size.saturating_sub(idle)
    );
    match crate::events::chain::unsealed_count(&state.db).await {
        Ok(n) => {
            let _ = writeln!(
                out,
                "# HELP wharf_events_unsealed Events written but not sealed into the audit chain yet.\n# TYPE wharf_events_unsealed gauge\nwharf_events_unsealed {n}"
            );
        }
        Err(e) => tracing::warn!(error = %e, "cannot count the unsealed events"),
    }
    let _ = writeln!(
        out,
        "# HELP wharf_requests_in_flight Requests being served.\n# TYPE wharf_requests_in_flight gauge\nwharf_requests_in_flight {}",
        state.lifecycle.in_flight()
    );
    if let Some(proxy) = &state.proxy {
        proxy.counters.render(&mut out);
    }
    let _ = writeln!(
        out,
        "# HELP wharf_build_info The version and commit of this binary.\n# TYPE wharf_build_info gauge\nwharf_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        env!("WHARF_COMMIT")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_escaped_and_times_are_rfc3339() {
        let mut out = String::new();
        quoted(&mut out, "pip/24.0 CPython");
        quoted(&mut out, "a\"b\nc");
        assert_eq!(out, "\"pip/24.0 CPython\"\"a\\\"b\\nc\"");
        let mut stamp = String::new();
        timestamp(&mut stamp);
        assert!(
            time::OffsetDateTime::parse(&stamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{stamp}"
        );
        assert_eq!(stamp.len(), 27, "{stamp}");
    }

    #[test]
    fn query_values_are_left_out() {
        let uri: axum::http::Uri = "/account/reset-password/confirm/?token=secret&next=/x"
            .parse()
            .expect("uri");
        assert_eq!(
            loggable_path(&uri),
            "/account/reset-password/confirm/?token=&next="
        );
        let plain: axum::http::Uri = "/simple/demo/".parse().expect("uri");
        assert_eq!(loggable_path(&plain), "/simple/demo/");
    }

    #[test]
    fn forwarded_ids_are_plain_tokens_only() {
        let ok = HeaderValue::from_static("3f2a-9b.1:x_y");
        assert_eq!(forwarded_request_id(&ok).as_deref(), Some("3f2a-9b.1:x_y"));
        for bad in ["a b", "a\"b", "", "x=1"] {
            let value = HeaderValue::from_str(bad).expect("header");
            assert_eq!(forwarded_request_id(&value), None, "{bad:?}");
        }
        assert_eq!(
            forwarded_request_id(&HeaderValue::from_str(&"a".repeat(129)).expect("header")),
            None
        );
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
    }
}
