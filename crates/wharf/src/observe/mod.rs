//! What the server tells its operator about each request: a request id (sent back as
//! `X-Request-Id`) and one access-log line at `info` on the target `wharf::access`.
//!
//! The line never holds a secret: the query's values are left out (reset and invitation
//! links carry their tokens there), and neither `Authorization` nor cookies are read.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::HttpBody as _;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, Method, header};
use axum::response::IntoResponse as _;

use crate::config::LogFormat;
use crate::state::AppState;

mod access;
pub mod counters;
pub mod log;

pub use access::flush as flush_access_log;

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

/// A request's id: one of ours (20 hex digits, in place), or the one a trusted proxy sent.
enum RequestId {
    Own([u8; 20]),
    Forwarded(HeaderValue),
}

impl RequestId {
    fn new() -> RequestId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = IDS.next.fetch_add(1, Ordering::Relaxed);
        // The prefix in 8 hex digits, then the counter's low 48 bits in 12.
        let mut id = [0u8; 20];
        let (prefix, counter) = id.split_at_mut(8);
        let mut value = IDS.prefix;
        for digit in prefix.iter_mut().rev() {
            *digit = HEX[(value & 0xf) as usize];
            value >>= 4;
        }
        let mut value = n;
        for digit in counter.iter_mut().rev() {
            *digit = HEX[(value & 0xf) as usize];
            value >>= 4;
        }
        RequestId::Own(id)
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            RequestId::Own(id) => id,
            RequestId::Forwarded(value) => value.as_bytes(),
        }
    }

    /// The `X-Request-Id` value. Ours are cut from a buffer per thread, so that a request
    /// costs no allocation of its own for it.
    fn header_value(&self) -> Option<HeaderValue> {
        thread_local! {
            static IDS_BUFFER: std::cell::RefCell<bytes::BytesMut> =
                std::cell::RefCell::new(bytes::BytesMut::new());
        }
        match self {
            RequestId::Own(id) => IDS_BUFFER.with(|buffer| {
                let mut buffer = buffer.borrow_mut();
                if buffer.capacity() < id.len() {
                    *buffer = bytes::BytesMut::with_capacity(4096);
                }
                buffer.extend_from_slice(id);
                HeaderValue::from_maybe_shared(buffer.split().freeze()).ok()
            }),
            RequestId::Forwarded(value) => Some(value.clone()),
        }
    }
}

/// An id a trusted proxy sent along, if it is a plain token (no spaces or quotes that could
/// forge a log field).
fn forwarded_request_id(value: &HeaderValue) -> Option<HeaderValue> {
    let text = value.as_bytes();
    let plain = !text.is_empty()
        && text.len() <= 128
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
    plain.then(|| value.clone())
}

/// Where access-log lines go, and in which format: set once by `main` (the same writer
/// thread as every other log line). Unset (the tests), lines go through `tracing`.
pub fn init_access_log(writer: log::LogWriter, format: LogFormat) {
    access::init(writer, format);
}

/// Everything every response gets, in one tower layer in front of every route (each layer
/// axum stacks costs a service and a future per request): the request id, the access-log
/// line, the request figures, the in-flight count, `X-Content-Type-Options: nosniff` (and
/// HSTS on an https site) where the handler set none, and a 500 for a handler that panics.
/// A request costs one `Arc` clone and no allocation of its own (the `X-Request-Id` value
/// aside).
#[derive(Clone)]
pub struct AccessLogLayer {
    observer: Arc<Observer>,
}

struct Observer {
    trusted_proxies: crate::config::TrustedProxies,
    lifecycle: Arc<crate::state::Lifecycle>,
    requests: Arc<counters::RequestCounters>,
    https: bool,
    /// `request_timeout`: how long a route may take to answer (its body read included).
    request_timeout: std::time::Duration,
    /// `Some(on)` when the access log's filter was decided once at the start (a writer thread
    /// from `main`); `None` (the tests) asks `tracing` at each request.
    log: Option<bool>,
}

impl Observer {
    fn logs(&self) -> bool {
        self.log
            .unwrap_or_else(|| tracing::enabled!(target: "wharf::access", tracing::Level::INFO))
    }
}

impl AccessLogLayer {
    pub fn new(state: &AppState) -> AccessLogLayer {
        let log = access::initialised()
            .then(|| tracing::enabled!(target: "wharf::access", tracing::Level::INFO));
        AccessLogLayer {
            observer: Arc::new(Observer {
                trusted_proxies: state.settings.trusted_proxies.clone(),
                lifecycle: state.lifecycle.clone(),
                requests: state.requests.clone(),
                https: state.settings.is_https(),
                request_timeout: state.settings.request_timeout.0,
                log,
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

impl<S> tower::Service<Request> for AccessLog<S>
where
    S: tower::Service<Request, Response = axum::response::Response, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let observer = self.observer.clone();
        let in_flight = observer.lifecycle.request_started();
        let begun = Begun::of(&observer, &request);
        let answer = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request))).ok();
        Observed {
            answer,
            begun: Some((begun, in_flight)),
            deadline: None,
            observer,
        }
    }
}

/// The answer of the route, then what the layer adds to it. No box: the route's own future
/// is `Unpin` (axum boxes it), and so is this.
pub struct Observed<F> {
    /// `None` when the route panicked before it had a future.
    answer: Option<F>,
    begun: Option<(Begun, crate::state::InFlight)>,
    /// The end of `request_timeout`, set the first time the route is not ready at once (a
    /// page from the cache never pays for a timer).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    observer: Arc<Observer>,
}

/// What a request that took longer than `request_timeout` answers; the route is dropped, so
/// what it was doing is undone (its transaction rolled back, its temporary file removed).
fn timed_out(timeout: std::time::Duration) -> axum::response::Response {
    crate::error::AppError::new(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        format!(
            "The request took longer than {} s (request_timeout): send it again on a faster connection.",
            timeout.as_secs()
        ),
    )
    .with_header(
        axum::http::header::CONNECTION,
        HeaderValue::from_static("close"),
    )
    .into_response()
}

/// What a panicking handler answers (the panic itself is reported by the panic hook).
fn panicked() -> axum::response::Response {
    crate::error::AppError::internal("a request handler panicked").into_response()
}

impl<F> Future for Observed<F>
where
    F: Future<Output = Result<axum::response::Response, Infallible>> + Unpin,
{
    type Output = Result<axum::response::Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut response = match &mut this.answer {
            None => panicked(),
            Some(answer) => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(answer).poll(cx))) {
                    Ok(Poll::Pending) => {
                        let timeout = this.observer.request_timeout;
                        let deadline = this.deadline.get_or_insert_with(|| {
                            let started = this
                                .begun
                                .as_ref()
                                .map_or_else(Instant::now, |b| b.0.started);
                            Box::pin(tokio::time::sleep_until((started + timeout).into()))
                        });
                        if deadline.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        timed_out(timeout)
                    }
                    Ok(Poll::Ready(Ok(response))) => response,
                    Ok(Poll::Ready(Err(never))) => match never {},
                    Err(_) => panicked(),
                }
            }
        };
        this.answer = None;
        this.deadline = None;
        let Some((begun, in_flight)) = this.begun.take() else {
            return Poll::Ready(Ok(response));
        };
        let streamed = begun.file_kind.is_some();
        begun.finish(&this.observer, &mut response);
        // A download is in flight until its last byte is sent, not when its head is.
        if streamed {
            return Poll::Ready(Ok(response.map(|body| {
                axum::body::Body::new(Counted {
                    body,
                    _in_flight: in_flight,
                })
            })));
        }
        drop(in_flight);
        Poll::Ready(Ok(response))
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

/// What is kept of a request until its answer: the request itself goes to the handler. No
/// copies: the route's name and the URI share what the router and hyper hold, and what only
/// the access line needs is kept only while the line is written.
struct Begun {
    started: Instant,
    request_id: RequestId,
    method: Method,
    route: Option<MatchedPath>,
    file_kind: Option<counters::FileKind>,
    bytes_in: Option<u64>,
    line: Option<LineFields>,
}

/// What only the access line says.
struct LineFields {
    path: Option<PathAndQuery>,
    client_ip: Option<std::net::IpAddr>,
    user_agent: Option<HeaderValue>,
}

impl Begun {
    fn of(observer: &Observer, request: &Request) -> Begun {
        let peer = request
            .extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        // Only a trusted proxy's id is taken over: no other request looks for one.
        let trusted_peer =
            peer.is_some_and(|ip| observer.trusted_proxies.contains(ip.to_canonical()));
        let request_id = trusted_peer
            .then(|| request.headers().get(&REQUEST_ID))
            .flatten()
            .and_then(forwarded_request_id)
            .map_or_else(RequestId::new, RequestId::Forwarded);
        let route = request.extensions().get::<MatchedPath>().cloned();
        let file_kind = matches!(
            route.as_ref().map(MatchedPath::as_str),
            Some("/files/{*path}" | "/files/upstream/{*rest}")
        )
        .then(|| counters::FileKind::of(request.uri().path()));
        let method = request.method().clone();
        // Only uploads' lengths are counted.
        let bytes_in = (method == Method::POST)
            .then(|| {
                request
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .or_else(|| request.body().size_hint().exact())
            })
            .flatten();
        let line = observer.logs().then(|| LineFields {
            path: request.uri().path_and_query().cloned(),
            // Behind no trusted proxy the client is the peer: no header to read.
            client_ip: if trusted_peer {
                crate::request::client_ip(peer, request.headers(), &observer.trusted_proxies)
            } else {
                peer.map(|ip| ip.to_canonical())
            },
            user_agent: request.headers().get(header::USER_AGENT).cloned(),
        });
        Begun {
            started: Instant::now(),
            request_id,
            method,
            route,
            file_kind,
            bytes_in,
            line,
        }
    }

    fn finish(self, observer: &Observer, response: &mut axum::response::Response) {
        let headers = response.headers_mut();
        if let Some(value) = self.request_id.header_value() {
            headers.insert(REQUEST_ID, value);
        }
        // No content sniffing, pages or not (index, files, errors).
        headers
            .entry(header::X_CONTENT_TYPE_OPTIONS)
            .or_insert(HeaderValue::from_static("nosniff"));
        // On an https site, browsers must never come back over plain http.
        if observer.https {
            headers.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000; includeSubDomains"),
            );
        }
        let is_head = self.method == Method::HEAD;
        // A body of known length says it (a page's); a HEAD answer's length, or a stream's,
        // is the header's.
        let exact = response.body().size_hint().exact().filter(|_| !is_head);
        let bytes = exact.or_else(|| {
            response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        });
        let ended = Instant::now();
        let elapsed = ended.saturating_duration_since(self.started);
        let route = self.route.as_ref().map(MatchedPath::as_str);
        observer.requests.record(&counters::Served {
            route,
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
        if let Some(line) = &self.line {
            access::AccessLine {
                request_id: self.request_id.as_bytes(),
                method: &self.method,
                path: line.path.as_ref(),
                route: route.unwrap_or("-"),
                status: response.status().as_u16(),
                bytes,
                duration_micros: elapsed.as_micros() as u64,
                ended,
                client_ip: line.client_ip,
                user_agent: line.user_agent.as_ref(),
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
    fn forwarded_ids_are_plain_tokens_only() {
        let ok = HeaderValue::from_static("3f2a-9b.1:x_y");
        assert_eq!(
            forwarded_request_id(&ok)
                .as_ref()
                .map(HeaderValue::as_bytes),
            Some(&b"3f2a-9b.1:x_y"[..])
        );
        for bad in ["a b", "a\"b", "", "x=1"] {
            let value = HeaderValue::from_str(bad).expect("header");
            assert_eq!(forwarded_request_id(&value), None, "{bad:?}");
        }
        assert_eq!(
            forwarded_request_id(&HeaderValue::from_str(&"a".repeat(129)).expect("header")),
            None
        );
        let (a, b) = (RequestId::new(), RequestId::new());
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_eq!(a.as_bytes().len(), 20);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
        let prefix = format!("{:08x}", IDS.prefix);
        assert!(a.as_bytes().starts_with(prefix.as_bytes()));
        assert_eq!(a.header_value().expect("value").as_bytes(), a.as_bytes());
    }
}
