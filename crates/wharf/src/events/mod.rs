//! The audit log: typed event tags (`spec/warehouse-security.md` §5) and one way to record an
//! event, with time, IP address and user agent, inside the transaction of the change it
//! describes so that the log never claims something that did not happen.

pub mod audit;
pub mod chain;
pub mod query;
mod tags;
pub mod user_agent;

pub use tags::EventTag;

use serde_json::Value;
use sqlx::AnyConnection;

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
    if !RECORDING.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(());
    }
    let (source_type, source_id) = source.parts();
    let mut additional = additional;
    if let (Some(user_agent), Some(object)) =
        (meta.user_agent.as_deref(), additional.as_object_mut())
    {
        object.insert("user_agent_info".to_owned(), user_agent::parse(user_agent));
    }
    sqlx::query(
        "INSERT INTO events (source_type, source_id, tag, time, ip_address, user_agent, additional) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(source_type)
    .bind(source_id)
    .bind(tag.as_str())
    .bind(now_micros)
    .bind(meta.ip_address.as_deref())
    .bind(meta.user_agent.as_deref())
    .bind(additional.to_string())
    .execute(conn)
    .await?;
    Ok(())
}
