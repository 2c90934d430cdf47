//! This process's request figures for `/metrics`: requests by route template, method and
//! status, a latency histogram per route, bytes served and uploaded, files served by kind,
//! upload refusals by reason (the page cache counts its own hits and misses).
//!
//! Counting costs atomics only: routes get their slot in a fixed table the first time they
//! are seen (a `OnceLock` per slot), so no request takes a lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{Method, StatusCode};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const METHODS: [&str; 5] = ["GET", "HEAD", "POST", "DELETE", "OTHER"];
/// Statuses counted on their own; the rest by class (`2xx`, `4xx`, …).
const STATUSES: [u16; 23] = [
    200, 201, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 409, 410, 413, 416,
    422, 429, 500, 503,
];
const STATUS_SLOTS: usize = STATUSES.len() + 5;
/// More than the router has routes; requests without a route share the `none` slot.
const ROUTE_SLOTS: usize = 256;
const ADDRESS_SLOTS: usize = 512;

struct RouteFigures {
    route: OnceLock<Box<str>>,
    requests: [[AtomicU64; STATUS_SLOTS]; METHODS.len()],
    /// Cumulative counts per bucket are made at render time from these per-bucket counts.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_micros: AtomicU64,
}

impl Default for RouteFigures {
    fn default() -> RouteFigures {
        RouteFigures {
            route: OnceLock::new(),
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_micros: AtomicU64::new(0),
        }
    }
}

/// What a served file is, for `wharf_files_served_total`.
#[derive(Clone, Copy, Debug)]
pub enum FileKind {
    Wheel,
    Sdist,
    Metadata,
    Other,
}

impl FileKind {
    pub fn of(path: &str) -> FileKind {
        if path.ends_with(".metadata") {
            FileKind::Metadata
        } else if path.ends_with(".whl") {
            FileKind::Wheel
        } else if path.ends_with(".tar.gz") || path.ends_with(".zip") {
            FileKind::Sdist
        } else {
            FileKind::Other
        }
    }
}

const FILE_KINDS: [&str; 4] = ["wheel", "sdist", "metadata", "other"];
/// Why an upload was refused, from its status.
const REFUSALS: [(u16, &str); 8] = [
    (400, "invalid"),
    (401, "unauthenticated"),
    (403, "forbidden"),
    (409, "conflict"),
    (410, "gone"),
    (413, "too_large"),
    (429, "rate_limited"),
    (0, "other"),
];

pub struct RequestCounters {
    routes: Box<[RouteFigures]>,
    /// The slot of a route by the address of its name: the router hands every request of a
    /// route the same shared name, so a request finds its slot without hashing the text.
    /// Each entry is `address << 8 | slot` (0 for none), checked against the slot's name.
    by_address: Box<[AtomicU64]>,
    bytes_served: AtomicU64,
    bytes_uploaded: AtomicU64,
    files_served: [AtomicU64; FILE_KINDS.len()],
    upload_refusals: [AtomicU64; REFUSALS.len()],
}

impl Default for RequestCounters {
    fn default() -> RequestCounters {
        RequestCounters {
            routes: (0..ROUTE_SLOTS).map(|_| RouteFigures::default()).collect(),
            by_address: (0..ADDRESS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            bytes_served: AtomicU64::new(0),
            bytes_uploaded: AtomicU64::new(0),
            files_served: std::array::from_fn(|_| AtomicU64::new(0)),
            upload_refusals: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl std::fmt::Debug for RequestCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCounters").finish_non_exhaustive()
    }
}

fn method_slot(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::DELETE => 3,
        _ => 4,
    }
}

fn status_slot(status: StatusCode) -> usize {
    let code = status.as_u16();
    match STATUSES.iter().position(|&s| s == code) {
        Some(i) => i,
        None => STATUSES.len() + usize::from((code / 100).clamp(1, 5) - 1),
    }
}

fn status_label(slot: usize) -> String {
    match STATUSES.get(slot) {
        Some(code) => code.to_string(),
        None => format!("{}xx", slot - STATUSES.len() + 1),
    }
}

/// One finished request, as the access log saw it.
pub struct Served<'a> {
    pub route: Option<&'a str>,
    pub method: &'a Method,
    pub status: StatusCode,
    pub seconds: f64,
    pub bytes_out: Option<u64>,
    pub bytes_in: Option<u64>,
}

impl RequestCounters {
    /// The slot of `route`: by the address of its text when it was seen there before, else
    /// by [`RequestCounters::slot`].
    fn slot_of(&self, route: &str) -> Option<&RouteFigures> {
        let address = route.as_ptr() as u64;
        let entry = &self.by_address
            [(address.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % ADDRESS_SLOTS];
        let known = entry.load(Ordering::Relaxed);
        if known >> 8 == address & (u64::MAX >> 8) {
            let figures = &self.routes[(known & 0xff) as usize];
            if figures
                .route
                .get()
                .is_some_and(|claimed| &**claimed == route)
            {
                return Some(figures);
            }
        }
        let index = self.slot_index(route)?;
        entry.store(
            ((address & (u64::MAX >> 8)) << 8) | index as u64,
            Ordering::Relaxed,
        );
        Some(&self.routes[index])
    }

    /// The slot of `route`: found by its hash, claimed on first sight.
    #[cfg(test)]
    fn slot(&self, route: &str) -> Option<&RouteFigures> {
        self.slot_index(route).map(|index| &self.routes[index])
    }

    /// The index of `route`'s slot: found by its hash, claimed on first sight.
    fn slot_index(&self, route: &str) -> Option<usize> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        route.hash(&mut hasher);
        let start = hasher.finish() as usize % ROUTE_SLOTS;
        for step in 0..ROUTE_SLOTS {
            let index = (start + step) % ROUTE_SLOTS;
            let claimed = self.routes[index].route.get_or_init(|| route.into());
            if &**claimed == route {
                return Some(index);
            }
        }
        None
    }

    pub fn record(&self, served: &Served<'_>) {
        let route = served.route.unwrap_or("none");
        if let Some(figures) = self.slot_of(route) {
            figures.requests[method_slot(served.method)][status_slot(served.status)]
                .fetch_add(1, Ordering::Relaxed);
            let bucket = BUCKETS
                .iter()
                .position(|&le| served.seconds <= le)
                .unwrap_or(BUCKETS.len());
            figures.buckets[bucket].fetch_add(1, Ordering::Relaxed);
            figures
                .duration_micros
                .fetch_add((served.seconds * 1e6) as u64, Ordering::Relaxed);
        }
        if let Some(bytes) = served.bytes_out {
            self.bytes_served.fetch_add(bytes, Ordering::Relaxed);
        }
        if route == "/legacy/" && *served.method == Method::POST {
            if served.status.is_success() {
                if let Some(bytes) = served.bytes_in {
                    self.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
                }
            } else {
                let code = served.status.as_u16();
                let reason = REFUSALS
                    .iter()
                    .position(|&(c, _)| c == code)
                    .unwrap_or(REFUSALS.len() - 1);
                self.upload_refusals[reason].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn file_served(&self, kind: FileKind) {
        self.files_served[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The figures in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let mut by_route: BTreeMap<&str, &RouteFigures> = BTreeMap::new();
        for figures in self.routes.iter() {
            if let Some(route) = figures.route.get() {
                by_route.insert(route, figures);
            }
        }
        out.push_str("# HELP wharf_http_requests_total Requests served by this process, by route template, method and status.\n# TYPE wharf_http_requests_total counter\n");
        for (route, figures) in &by_route {
            for (m, method) in METHODS.iter().enumerate() {
                for s in 0..STATUS_SLOTS {
                    let n = figures.requests[m][s].load(Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "wharf_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{}\"}} {n}",
                            escape(route),
                            status_label(s)
                        );
                    }
                }
            }
        }
        out.push_str("# HELP wharf_http_request_duration_seconds Time to the response head, by route template.\n# TYPE wharf_http_request_duration_seconds histogram\n");
        for (route, figures) in &by_route {
            let route = escape(route);
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += figures.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "wharf_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            cumulative += figures.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "wharf_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {cumulative}\nwharf_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\nwharf_http_request_duration_seconds_count{{route=\"{route}\"}} {cumulative}",
                figures.duration_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
        }
        let mut counter = |name: &str, help: &str, samples: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        counter(
            "wharf_bytes_served_total",
            "Bytes of response bodies sent (where their length is known).",
            vec![(String::new(), self.bytes_served.load(Ordering::Relaxed))],
        );
        counter(
            "wharf_bytes_uploaded_total",
            "Bytes of accepted uploads (request bodies).",
            vec![(String::new(), self.bytes_uploaded.load(Ordering::Relaxed))],
        );
        counter(
            "wharf_files_served_total",
            "Distribution files and .metadata served, by kind.",
            FILE_KINDS
                .iter()
                .enumerate()
                .map(|(i, kind)| {
                    (
                        format!("{{kind=\"{kind}\"}}"),
                        self.files_served[i].load(Ordering::Relaxed),
                    )
                })
                .collect(),
        );
        counter(
            "wharf_upload_refusals_total",
            "Uploads refused, by reason.",
            REFUSALS
                .iter()
                .enumerate()
                .map(|(i, (_, reason))| {
                    (
                        format!("{{reason=\"{reason}\"}}"),
                        self.upload_refusals[i].load(Ordering::Relaxed),
                    )
                })
                .collect(),
        );
    }
}

/// A label value as Prometheus' text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_method_and_status() {
        let counters = RequestCounters::default();
        for (route, method, status, seconds) in [
            ("/simple/{project}/", Method::GET, 200, 0.0004),
            ("/simple/{project}/", Method::GET, 200, 0.003),
            ("/simple/{project}/", Method::GET, 404, 0.3),
            ("/legacy/", Method::POST, 413, 0.01),
            ("/files/{*path}", Method::HEAD, 299, 20.0),
        ] {
            counters.record(&Served {
                route: Some(route),
                method: &method,
                status: StatusCode::from_u16(status).expect("status"),
                seconds,
                bytes_out: Some(10),
                bytes_in: Some(5),
            });
        }
        counters.file_served(FileKind::of("a-1.0-py3-none-any.whl.metadata"));
        let mut out = String::new();
        counters.render(&mut out);
        for line in [
            "wharf_http_requests_total{route=\"/simple/{project}/\",method=\"GET\",status=\"200\"} 2",
            "wharf_http_requests_total{route=\"/simple/{project}/\",method=\"GET\",status=\"404\"} 1",
            "wharf_http_requests_total{route=\"/files/{*path}\",method=\"HEAD\",status=\"2xx\"} 1",
            "wharf_http_request_duration_seconds_bucket{route=\"/simple/{project}/\",le=\"0.0005\"} 1",
            "wharf_http_request_duration_seconds_bucket{route=\"/simple/{project}/\",le=\"0.005\"} 2",
            "wharf_http_request_duration_seconds_bucket{route=\"/simple/{project}/\",le=\"+Inf\"} 3",
            "wharf_http_request_duration_seconds_count{route=\"/files/{*path}\"} 1",
            "wharf_http_request_duration_seconds_bucket{route=\"/files/{*path}\",le=\"10\"} 0",
            "wharf_bytes_served_total 50",
            "wharf_bytes_uploaded_total 0",
            "wharf_upload_refusals_total{reason=\"too_large\"} 1",
            "wharf_files_served_total{kind=\"metadata\"} 1",
        ] {
            assert!(out.contains(line), "{line} in\n{out}");
        }
    }

    #[test]
    fn every_route_gets_its_own_slot() {
        let counters = RequestCounters::default();
        for i in 0..200 {
            assert!(counters.slot(&format!("/route/{i}/")).is_some());
        }
        for i in 0..200 {
            let route = format!("/route/{i}/");
            assert_eq!(
                counters
                    .slot(&route)
                    .and_then(|s| s.route.get())
                    .map(|r| &**r),
                Some(route.as_str())
            );
            // The same name at another address, or another name at an address seen before,
            // finds its own slot.
            let copy = route.clone();
            let by_address = counters.slot_of(&copy).map(|s| s as *const RouteFigures);
            assert_eq!(by_address, counters.slot(&route).map(|s| s as *const _));
            assert_eq!(
                counters.slot_of(&copy).map(|s| s as *const RouteFigures),
                by_address
            );
        }
        let mut reused = String::from("/first/");
        let first = counters.slot_of(&reused).map(|s| s as *const RouteFigures);
        reused.clear();
        reused.push_str("/other/");
        let other = counters.slot_of(&reused).map(|s| s as *const RouteFigures);
        assert_ne!(first, other);
        assert_eq!(
            other,
            counters.slot("/other/").map(|s| s as *const RouteFigures)
        );
    }
}
