//! The audit log: typed event tags (`spec/warehouse-security.md` §5) and one way to record an
//! event, with time, IP address and user agent, inside the transaction of the change it
//! describes so that the log never claims something that did not happen.

pub mod audit;
pub mod chain;
pub mod head;
pub mod query;
mod tags;

pub use tags::EventTag;

use serde_json::Value;
use sqlx::AnyConnection;

/// An `events` row as its readers (the log's pages, export, sealer and `verify`) get it: by
/// column name, so a reordered `SELECT` cannot swap same-typed columns. Every reader selects
/// every column; the chain's `seq`, `prev_hash` and `hash` stay empty until it is sealed.
#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    id: i64,
    seq: Option<i64>,
    source_type: String,
    source_id: Option<String>,
    tag: String,
    time: i64,
    ip_address: Option<String>,
    user_agent: Option<String>,
    additional: String,
    prev_hash: Option<String>,
    hash: Option<String>,
}

/// What an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source<'a> {
    User(&'a str),
    Project(&'a str),
    File(&'a str),
    /// Nothing we know, e.g. a request with an unknown token; shown to admins only.
    Anonymous,
}

impl Source<'_> {
    fn parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Source::User(id) => ("user", Some(id)),
            Source::Project(id) => ("project", Some(id)),
            Source::File(id) => ("file", Some(id)),
            Source::Anonymous => ("anonymous", None),
        }
    }
}

/// Who made the request: recorded with each event.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

/// On unless the audit-log benchmark turns it off to measure its own baseline.
static RECORDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// For `benches/audit_log.rs` only: the same run with and without recording.
pub fn set_recording(on: bool) {
    RECORDING.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Records one event. Pass the transaction's connection so the event commits (or not) with
/// the change it describes.
pub async fn record(
    conn: &mut AnyConnection,
    source: Source<'_>,
    tag: EventTag,
    meta: &RequestMeta,
    now_micros: i64,
    additional: Value,
) -> Result<(), sqlx::Error> {
    let mut batch = Batch::new(meta, now_micros);
    batch.add(source, tag, additional);
    batch.flush(conn).await
}

/// The events of one request, written together with one statement when the request's
/// transaction is about to commit (the upload path writes five or six).
pub struct Batch<'m> {
    meta: &'m RequestMeta,
    now_micros: i64,
    events: Vec<(&'static str, Option<String>, EventTag, Value)>,
}

impl<'m> Batch<'m> {
    pub fn new(meta: &'m RequestMeta, now_micros: i64) -> Batch<'m> {
        Batch {
            meta,
            now_micros,
            events: Vec::new(),
        }
    }

    pub fn add(&mut self, source: Source<'_>, tag: EventTag, additional: Value) {
        let (source_type, source_id) = source.parts();
        self.events
            .push((source_type, source_id.map(str::to_owned), tag, additional));
    }

    /// Writes the events, unsealed: the sealer, which alone holds the chain's key, gives them
    /// their place (within half a second in `serve`; `wharf audit` seals first).
    pub async fn flush(self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        if self.events.is_empty() || !RECORDING.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let ip_address = self.meta.ip_address.as_deref();
        let user_agent = self.meta.user_agent.as_deref();
        let rows: Vec<(&str, Option<String>, &str, String)> = self
            .events
            .into_iter()
            .map(|(source_type, source_id, tag, mut additional)| {
                if let (Some(ua), Some(object)) = (user_agent, additional.as_object_mut()) {
                    object.insert(
                        "user_agent_info".to_owned(),
                        wharf_packaging::user_agent::parse(ua),
                    );
                }
                (source_type, source_id, tag.as_str(), additional.to_string())
            })
            .collect();
        let values: Vec<String> = (0..rows.len())
            .map(|i| {
                let b = i * 7;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO events (source_type, source_id, tag, time, ip_address, user_agent, additional) VALUES {}",
            values.join(", ")
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (source_type, source_id, tag, additional) in &rows {
            insert = insert
                .bind(*source_type)
                .bind(source_id.as_deref())
                .bind(*tag)
                .bind(self.now_micros)
                .bind(ip_address)
                .bind(user_agent)
                .bind(additional.as_str());
        }
        insert.execute(conn).await?;
        Ok(())
    }
}
