//! The audit log: typed event tags (`spec/warehouse-security.md` §5) and one way to record an
//! event, with time, IP address and user agent, inside the transaction of the change it
//! describes so that the log never claims something that did not happen.

mod tags;

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
    let (source_type, source_id) = source.parts();
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

/// One recorded event, as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: i64,
    pub source_type: String,
    pub source_id: Option<String>,
    pub tag: String,
    pub time: i64,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub additional: Value,
}

type EventRow = (
    i64,
    String,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<String>,
    String,
);

/// The events about `source`, newest first.
pub async fn for_source(
    pool: &sqlx::AnyPool,
    source: Source<'_>,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    let (source_type, source_id) = source.parts();
    let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, source_type, source_id, tag, time, ip_address, user_agent, additional \
             FROM events WHERE source_type = $1 AND (source_id = $2 OR ($2 IS NULL AND source_id IS NULL)) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(source_type)
        .bind(source_id)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, source_type, source_id, tag, time, ip_address, user_agent, additional)| Event {
                id,
                source_type,
                source_id,
                tag,
                time,
                ip_address,
                user_agent,
                additional: serde_json::from_str(&additional).unwrap_or(Value::Null),
            },
        )
        .collect())
}
