//! The access-log line: its layout (the one `tracing`'s formatter gives, text or JSON) and
//! where it goes. `main` hands over the log's writer thread; each thread that serves requests
//! then writes its lines into a buffer of its own, and finished batches go to the writer
//! thread as one message: when a buffer fills, or at the latest [`FLUSH_AFTER`] after its
//! first line (a flusher thread, asleep while there is nothing to write). Without a writer
//! (the tests), lines go through `tracing` as one event each.

use std::io::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, Method};

use crate::config::LogFormat;

/// How long a line may wait in its thread's buffer.
pub const FLUSH_AFTER: Duration = Duration::from_millis(50);
/// A buffer this full is handed to the writer thread at once, as one message (the buffer
/// itself: a fresh one takes its place).
const BATCH_BYTES: usize = 16 * 1024;
/// A buffer's room: a batch and one more line, so that a line never makes it grow.
const BATCH_ROOM: usize = BATCH_BYTES + 1024;

/// Everything the line says about one request, borrowed from what the layer kept.
pub struct AccessLine<'a> {
    pub request_id: &'a [u8],
    pub method: &'a Method,
    /// The request's path and query (`None` for an authority-form request: an empty path, as `Uri::path` gives).
    pub path: Option<&'a PathAndQuery>,
    pub route: &'a str,
    pub status: u16,
    pub bytes: Option<u64>,
    pub duration_micros: u64,
    /// When the answer was ready: the line's time.
    pub ended: Instant,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<&'a HeaderValue>,
}

/// The user agent as logged: at most 256 characters, `-` when absent or not visible ASCII.
fn user_agent(value: Option<&HeaderValue>) -> &str {
    match value.and_then(|v| v.to_str().ok()) {
        // `to_str` accepts visible ASCII only: a byte is a character.
        Some(text) => &text[..text.len().min(256)],
        None => "-",
    }
}

impl AccessLine<'_> {
    /// Sends the line on its way: to this thread's batch, or through `tracing` without one.
    pub fn write(&self) {
        let Some(sink) = SINK.get() else {
            self.trace();
            return;
        };
        LOCAL.with(|local| local.append(sink, self));
    }

    /// One `tracing` event (the tests, which have no writer thread of their own).
    fn trace(&self) {
        let mut path = Vec::new();
        loggable_path(&mut path, self.path);
        let path = String::from_utf8_lossy(&path);
        tracing::info!(
            target: "wharf::access",
            request_id = std::str::from_utf8(self.request_id).unwrap_or("-"),
            method = self.method.as_str(),
            path = path.as_ref(),
            route = self.route,
            status = self.status,
            bytes = self.bytes,
            duration_ms = format_args!("{:.3}", self.duration_micros as f64 / 1000.0),
            client_ip = format_args!("{}", self.client_ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string())),
            user_agent = user_agent(self.user_agent),
        );
    }

    /// The line, newline included, at the end of `out`.
    pub fn format(&self, out: &mut Vec<u8>, format: LogFormat) {
        match format {
            LogFormat::Text => {
                // `tracing`'s text layout: strings quoted and escaped as Rust's Debug does,
                // so a path or user agent cannot forge a field or a line. The request id
                // (hex digits, or a forwarded one checked to be a plain token) and the method
                // (an HTTP token) never need escaping.
                out.reserve(512);
                timestamp(out, wall_clock(self.ended));
                out.extend_from_slice(b"  INFO wharf::access: request_id=\"");
                out.extend_from_slice(self.request_id);
                out.extend_from_slice(b"\" method=\"");
                out.extend_from_slice(self.method.as_str().as_bytes());
                out.push(b'"');
                out.extend_from_slice(b" path=");
                quoted(out, |out| loggable_path(out, self.path));
                out.extend_from_slice(b" route=");
                quoted(out, |out| out.extend_from_slice(self.route.as_bytes()));
                out.extend_from_slice(b" status=");
                push_status(out, self.status);
                if let Some(bytes) = self.bytes {
                    out.extend_from_slice(b" bytes=");
                    push_number(out, bytes);
                }
                out.extend_from_slice(b" duration_ms=");
                push_millis(out, self.duration_micros);
                out.extend_from_slice(b" client_ip=\"");
                push_ip(out, self.client_ip);
                out.extend_from_slice(b"\" user_agent=");
                let agent = user_agent(self.user_agent);
                quoted(out, |out| out.extend_from_slice(agent.as_bytes()));
                out.push(b'\n');
            }
            LogFormat::Json => {
                out.extend_from_slice(b"{\"timestamp\":\"");
                timestamp(out, wall_clock(self.ended));
                out.extend_from_slice(
                    b"\",\"level\":\"INFO\",\"target\":\"wharf::access\",\"request_id\":",
                );
                json_string(out, self.request_id);
                out.extend_from_slice(b",\"method\":");
                json_string(out, self.method.as_str().as_bytes());
                out.extend_from_slice(b",\"path\":");
                let mut path = Vec::with_capacity(64);
                loggable_path(&mut path, self.path);
                json_string(out, &path);
                out.extend_from_slice(b",\"route\":");
                json_string(out, self.route.as_bytes());
                out.extend_from_slice(b",\"status\":");
                push_number(out, u64::from(self.status));
                if let Some(bytes) = self.bytes {
                    out.extend_from_slice(b",\"bytes\":");
                    push_number(out, bytes);
                }
                out.extend_from_slice(b",\"duration_ms\":");
                push_millis(out, self.duration_micros);
                out.extend_from_slice(b",\"client_ip\":\"");
                push_ip(out, self.client_ip);
                out.extend_from_slice(b"\",\"user_agent\":");
                json_string(out, user_agent(self.user_agent).as_bytes());
                out.extend_from_slice(b"}\n");
            }
        }
    }
}

/// Where the lines go: set once by `main`.
struct Sink {
    writer: super::log::LogWriter,
    format: LogFormat,
    /// Every thread's buffer, for the flusher.
    batches: Mutex<Vec<Arc<Batch>>>,
    /// Some buffer has lines the flusher has not taken yet.
    pending: AtomicBool,
    flusher: std::thread::Thread,
}

type Batch = Mutex<Vec<u8>>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Access-log lines go to `writer` (the thread every other log line goes through), in
/// `format`, from now on.
pub fn init(writer: super::log::LogWriter, format: LogFormat) {
    let flusher = std::thread::Builder::new()
        .name("wharf-access-log".to_owned())
        .spawn(flush_forever);
    let Ok(flusher) = flusher else {
        return;
    };
    let thread = flusher.thread().clone();
    let _ = SINK.set(Sink {
        writer,
        format,
        batches: Mutex::new(Vec::new()),
        pending: AtomicBool::new(false),
        flusher: thread.clone(),
    });
    thread.unpark();
}

/// The flusher: asleep until some thread has a line, then hands over every buffer once
/// [`FLUSH_AFTER`] has passed.
fn flush_forever() {
    loop {
        let Some(sink) = SINK.get() else {
            std::thread::park();
            continue;
        };
        while !sink.pending.load(Ordering::SeqCst) {
            std::thread::park();
        }
        std::thread::sleep(FLUSH_AFTER);
        sink.flush();
    }
}

/// Whether `main` has handed over the writer thread.
pub fn initialised() -> bool {
    SINK.get().is_some()
}

/// Hands every line written so far to the writer thread (before the process says it stops).
pub fn flush() {
    if let Some(sink) = SINK.get() {
        sink.flush();
    }
}

impl Sink {
    fn flush(&self) {
        self.pending.store(false, Ordering::SeqCst);
        let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        // The buffers of threads that have ended, once empty, are let go.
        batches.retain(|batch| {
            let mut lines = batch.lock().unwrap_or_else(PoisonError::into_inner);
            self.hand_over(&mut lines);
            Arc::strong_count(batch) > 1
        });
    }

    /// The lines to the writer thread, as one message: the buffer itself, a fresh one in
    /// its place.
    fn hand_over(&self, lines: &mut Vec<u8>) {
        if !lines.is_empty() {
            self.writer
                .send(std::mem::replace(lines, Vec::with_capacity(BATCH_ROOM)));
        }
    }
}

/// This thread's buffer, registered with the sink on first use.
struct Local(Arc<Batch>);

thread_local! {
    static LOCAL: Local = Local::register();
}

impl Local {
    fn register() -> Local {
        let batch = Arc::new(Mutex::new(Vec::with_capacity(BATCH_ROOM)));
        if let Some(sink) = SINK.get() {
            sink.batches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(batch.clone());
        }
        Local(batch)
    }

    fn append(&self, sink: &Sink, line: &AccessLine<'_>) {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let first = lines.is_empty();
        line.format(&mut lines, sink.format);
        if lines.len() >= BATCH_BYTES {
            sink.hand_over(&mut lines);
        } else if first && !sink.pending.swap(true, Ordering::SeqCst) {
            drop(lines);
            sink.flusher.unpark();
        }
    }
}

impl Drop for Local {
    /// A thread that ends hands over what it still holds.
    fn drop(&mut self) {
        if let Some(sink) = SINK.get() {
            let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            sink.writer.send(std::mem::take(&mut *lines));
        }
    }
}

/// The path and the query's keys, without their values: `/account/reset-password/?token=`.
pub fn loggable_path(out: &mut Vec<u8>, path: Option<&PathAndQuery>) {
    let Some(path) = path else {
        return;
    };
    out.extend_from_slice(path.path().as_bytes());
    if let Some(query) = path.query() {
        out.push(b'?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push(b'&');
            }
            let key = pair.split('=').next().unwrap_or_default();
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
        }
    }
}

/// What `write` puts at the end of `out`, in double quotes, escaped as Rust's Debug escapes
/// it; plain text (the usual case) is copied as it is, without the per-character escaping.
pub fn quoted(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    out.push(b'"');
    let start = out.len();
    write(out);
    if plain(&out[start..]) {
        out.push(b'"');
    } else {
        let text = String::from_utf8_lossy(&out[start..]).into_owned();
        out.truncate(start - 1);
        let _ = write!(out, "{text:?}");
    }
}

/// Whether `text` is printable ASCII without `"` or `\`: what Debug leaves as it is. Eight
/// bytes at a time (the path and the user agent are checked on every request).
fn plain(text: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether some byte of `x` is below `n` (for `n` <= 128), or zero.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH != 0;
    let zero = |x: u64| below(x, 1);
    let mut words = text.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes);
        if x & HIGH != 0
            || below(x, 0x20)
            || zero(x ^ (ONES * 0x7f))
            || zero(x ^ (ONES * u64::from(b'"')))
            || zero(x ^ (ONES * u64::from(b'\\')))
        {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// A JSON string (the text is UTF-8 already: header values that are not are logged as `-`).
fn json_string(out: &mut Vec<u8>, text: &[u8]) {
    let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(text));
}

/// A number in decimal (itoa: no `core::fmt`), pushed byte by byte: a copy of a few bytes
/// costs more than the pushes.
fn push_number(out: &mut Vec<u8>, value: u64) {
    for &digit in itoa::Buffer::new().format(value).as_bytes() {
        out.push(digit);
    }
}

/// An HTTP status: three digits (`StatusCode` holds 100 to 999).
fn push_status(out: &mut Vec<u8>, status: u16) {
    if (100..1000).contains(&status) {
        out.push(b'0' + (status / 100) as u8);
        out.push(b'0' + (status / 10 % 10) as u8);
        out.push(b'0' + (status % 10) as u8);
    } else {
        push_number(out, u64::from(status));
    }
}

/// The client's address; IPv4 without `core::fmt`.
fn push_ip(out: &mut Vec<u8>, ip: Option<IpAddr>) {
    thread_local! {
        /// The last address this thread wrote (a connection's requests come one by one).
        static LAST: std::cell::Cell<([u8; 4], [u8; 15], u8)> = const {
            std::cell::Cell::new(([0; 4], [0; 15], 0))
        };
    }
    match ip {
        None => out.push(b'-'),
        Some(IpAddr::V4(v4)) => {
            let (address, text, length) = LAST.get();
            if length > 0 && address == v4.octets() {
                out.extend_from_slice(&text[..usize::from(length)]);
                return;
            }
            let start = out.len();
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                let octet = *octet;
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
            let written = &out[start..];
            let mut text = [0u8; 15];
            text[..written.len()].copy_from_slice(written);
            LAST.set((v4.octets(), text, written.len() as u8));
        }
        Some(other) => {
            let _ = write!(out, "{other}");
        }
    }
}

/// `value`'s last `digits` decimal digits, zero-padded.
fn push_padded(out: &mut Vec<u8>, mut value: u64, digits: usize) {
    let mut text = [b'0'; 20];
    for slot in text[..digits].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    for &digit in &text[..digits] {
        out.push(digit);
    }
}

/// Milliseconds with three decimals, from microseconds.
fn push_millis(out: &mut Vec<u8>, micros: u64) {
    push_number(out, micros / 1000);
    out.push(b'.');
    push_padded(out, micros % 1000, 3);
}

/// The wall-clock time (since the Unix epoch) of `instant`: the system clock is read once a
/// second per thread, and the monotonic clock the request already read gives the rest.
fn wall_clock(instant: Instant) -> Duration {
    thread_local! {
        static SYNCED: std::cell::Cell<Option<(Instant, Duration)>> = const { std::cell::Cell::new(None) };
    }
    SYNCED.with(|synced| {
        if let Some((at, wall)) = synced.get()
            && let Some(since) = instant.checked_duration_since(at)
            && since < Duration::from_secs(1)
        {
            return wall + since;
        }
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        synced.set(Some((instant, wall)));
        wall
    })
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` since the Unix epoch, in UTC (the civil calendar from a
/// day count, as in Howard Hinnant's `civil_from_days`).
fn date_and_time(out: &mut Vec<u8>, secs: u64) {
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    push_padded(out, year, 4);
    out.push(b'-');
    push_padded(out, month, 2);
    out.push(b'-');
    push_padded(out, day, 2);
    out.push(b'T');
    push_padded(out, of_day / 3_600, 2);
    out.push(b':');
    push_padded(out, of_day / 60 % 60, 2);
    out.push(b':');
    push_padded(out, of_day % 60, 2);
}

/// `now` (since the Unix epoch) as RFC 3339 in UTC with microseconds. The date and time of
/// day are formatted once a second per thread; the rest is arithmetic.
pub fn timestamp(out: &mut Vec<u8>, now: Duration) {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let secs = now.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != secs {
            let mut formatted = Vec::with_capacity(19);
            date_and_time(&mut formatted, secs);
            *cached = (secs, String::from_utf8(formatted).unwrap_or_default());
        }
        out.extend_from_slice(cached.1.as_bytes());
    });
    out.push(b'.');
    push_padded(out, u64::from(now.subsec_micros()), 6);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn fields_are_quoted_and_escaped_and_times_are_rfc3339() {
        let out = text(|out| {
            quoted(out, |o| o.extend_from_slice(b"pip/24.0 CPython"));
            quoted(out, |o| o.extend_from_slice(b"a\"b\nc\td\\"));
        });
        assert_eq!(out, "\"pip/24.0 CPython\"\"a\\\"b\\nc\\td\\\\\"");
        let stamp = text(|o| timestamp(o, wall_clock(Instant::now())));
        assert!(
            time::OffsetDateTime::parse(&stamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{stamp}"
        );
        assert_eq!(stamp.len(), 27, "{stamp}");
        assert_eq!(text(|o| push_millis(o, 1_234_567)), "1234.567");
        assert_eq!(text(|o| push_millis(o, 5)), "0.005");
        assert_eq!(text(|o| push_millis(o, 70)), "0.070");
        for n in [0, 7, 10, 99, 100, 65_535, u64::MAX] {
            assert_eq!(text(|o| push_number(o, n)), n.to_string());
        }
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
        ] {
            let parsed: IpAddr = ip.parse().expect("address");
            assert_eq!(text(|o| push_ip(o, Some(parsed))), ip);
            // Again: from the thread's last address.
            let twice = text(|o| {
                push_ip(o, Some(parsed));
                push_ip(o, Some(parsed));
            });
            assert_eq!(twice, format!("{ip}{ip}"));
        }
        assert_eq!(text(|o| push_ip(o, None)), "-");
    }

    #[test]
    fn plain_text_is_told_from_text_to_escape_eight_bytes_at_a_time() {
        for length in 0..40 {
            let base = vec![b'a'; length];
            assert!(plain(&base), "{length}");
            for at in 0..length {
                for b in [0u8, 0x1f, b'"', b'\\', 0x7f, 0x80, 0xff, b'\n', b'\t'] {
                    let mut text = base.clone();
                    text[at] = b;
                    assert!(!plain(&text), "{length} {at} {b:#x}");
                }
                for b in [0x20u8, b'!', b'#', b'[', b']', b'~', b'0', b'Z'] {
                    let mut text = base.clone();
                    text[at] = b;
                    assert!(plain(&text), "{length} {at} {b:#x}");
                }
            }
        }
    }

    #[test]
    fn query_values_are_left_out() {
        let uri: PathAndQuery = "/account/reset-password/confirm/?token=secret&next=/x"
            .parse()
            .expect("uri");
        assert_eq!(
            text(|o| loggable_path(o, Some(&uri))),
            "/account/reset-password/confirm/?token=&next="
        );
        let plain: PathAndQuery = "/simple/demo/".parse().expect("uri");
        assert_eq!(text(|o| loggable_path(o, Some(&plain))), "/simple/demo/");
        assert_eq!(text(|o| loggable_path(o, None)), "");
    }

    fn sample<'a>(uri: &'a PathAndQuery, agent: &'a HeaderValue) -> AccessLine<'a> {
        AccessLine {
            request_id: b"0123456789abcdef0123",
            method: &Method::GET,
            path: Some(uri),
            route: "/simple/{project}/",
            status: 200,
            bytes: Some(1234),
            duration_micros: 1_005,
            ended: Instant::now(),
            client_ip: Some(IpAddr::from([127, 0, 0, 1])),
            user_agent: Some(agent),
        }
    }

    #[test]
    fn the_text_line_is_tracings_layout() {
        let uri: PathAndQuery = "/simple/demo/?x=1".parse().expect("uri");
        let agent = HeaderValue::from_static("pip/24.0 \"probe\"");
        let line = text(|o| sample(&uri, &agent).format(o, LogFormat::Text));
        let (stamp, rest) = line.split_at(27);
        assert!(stamp.ends_with('Z'), "{line}");
        assert_eq!(
            rest,
            "  INFO wharf::access: request_id=\"0123456789abcdef0123\" method=\"GET\" path=\"/simple/demo/?x=\" route=\"/simple/{project}/\" status=200 bytes=1234 duration_ms=1.005 client_ip=\"127.0.0.1\" user_agent=\"pip/24.0 \\\"probe\\\"\"\n"
        );
    }

    #[test]
    fn the_json_line_is_one_object() {
        let uri: PathAndQuery = "/simple/demo/".parse().expect("uri");
        let agent = HeaderValue::from_static("pip/24.0");
        let line = text(|o| sample(&uri, &agent).format(o, LogFormat::Json));
        assert!(line.ends_with("}\n"), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(value["target"], "wharf::access");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["request_id"], "0123456789abcdef0123");
        assert_eq!(value["path"], "/simple/demo/");
        assert_eq!(value["status"], 200);
        assert_eq!(value["bytes"], 1234);
        assert_eq!(value["duration_ms"].as_f64(), Some(1.005));
        assert_eq!(value["client_ip"], "127.0.0.1");
        assert_eq!(value["user_agent"], "pip/24.0");
        let stamp = value["timestamp"].as_str().expect("timestamp");
        assert_eq!(stamp.len(), 27, "{stamp}");
    }

    #[test]
    fn the_wall_clock_follows_the_system_clock() {
        let before = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after the epoch");
        let first = wall_clock(Instant::now());
        let later = wall_clock(Instant::now() + Duration::from_millis(300));
        let after = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after the epoch");
        assert!(before <= first && first <= after, "{first:?}");
        assert!(
            later >= first + Duration::from_millis(299),
            "{first:?} {later:?}"
        );
        // More than a second on: the system clock again.
        let resynced = wall_clock(Instant::now() + Duration::from_secs(5));
        assert!(
            resynced <= after + Duration::from_millis(100),
            "{resynced:?}"
        );
        let stamp = text(|o| timestamp(o, Duration::from_micros(1_700_000_000_000_042)));
        assert_eq!(stamp, "2023-11-14T22:13:20.000042Z");
        // The calendar agrees with the `time` crate's, leap days and centuries included.
        let format =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        for secs in [
            0u64,
            59,
            86_399,
            86_400,
            951_782_400,
            951_868_799,
            4_107_542_400,
            1_709_164_800,
            1_709_251_199,
            1_735_689_599,
            253_402_300_799,
        ]
        .into_iter()
        .chain((0..400).map(|i| i * 7_884_001 + 12_345))
        {
            let expected = time::OffsetDateTime::from_unix_timestamp(secs as i64)
                .expect("time")
                .format(&format)
                .expect("format");
            assert_eq!(text(|o| date_and_time(o, secs)), expected, "{secs}");
        }
    }

    #[test]
    fn a_long_or_binary_user_agent_is_cut_or_left_out() {
        let long = HeaderValue::from_str(&"a".repeat(300)).expect("header");
        assert_eq!(user_agent(Some(&long)).len(), 256);
        let binary = HeaderValue::from_bytes(b"caf\xc3\xa9").expect("header");
        assert_eq!(user_agent(Some(&binary)), "-");
        assert_eq!(user_agent(None), "-");
    }
}
