//! Reading the audit log for the history pages: filters, sorting, pagination.

use serde::Serialize;
use serde_json::Value;

use crate::db::Db;

/// Which events (all given conditions hold).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Events of this user.
    pub user_id: Option<String>,
    /// Events of this project and of its files.
    pub project_id: Option<String>,
    pub tag: Option<String>,
    pub ip_address: Option<String>,
    /// Micros, inclusive.
    pub since: Option<i64>,
    /// Micros, exclusive.
    pub until: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    NewestFirst,
    OldestFirst,
    Tag,
    IpAddress,
}

impl Sort {
    pub fn parse(s: &str) -> Sort {
        match s {
            "oldest" => Sort::OldestFirst,
            "tag" => Sort::Tag,
            "ip" => Sort::IpAddress,
            _ => Sort::NewestFirst,
        }
    }

    fn order_by(self) -> &'static str {
        match self {
            Sort::NewestFirst => "time DESC, id DESC",
            Sort::OldestFirst => "time, id",
            Sort::Tag => "tag, time DESC, id DESC",
            Sort::IpAddress => "ip_address, time DESC, id DESC",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    pub id: i64,
    pub source_type: String,
    pub source_id: Option<String>,
    /// The source's name (username, project name, filename) while it exists.
    pub source_name: Option<String>,
    pub tag: String,
    pub time: i64,
    pub ip_address: Option<String>,
    /// "pip 24.0", "Chrome 156", or the raw string.
    pub client: String,
    /// The payload as `key: value` lines, without the parsed user agent.
    pub details: Vec<(String, String)>,
}

crate::site::template_value!(Listed);

fn client(user_agent: Option<&str>, additional: &Value) -> String {
    let info = &additional["user_agent_info"];
    let installer = info["installer"].as_str().unwrap_or_default();
    match installer {
        "Browser" => format!(
            "{} {}",
            info["browser"].as_str().unwrap_or("Browser"),
            info["version"].as_str().unwrap_or_default()
        )
        .trim()
        .to_owned(),
        "" | "other" => user_agent.unwrap_or_default().chars().take(60).collect(),
        name => format!("{name} {}", info["version"].as_str().unwrap_or_default())
            .trim()
            .to_owned(),
    }
}

fn details(additional: &Value) -> Vec<(String, String)> {
    let Some(object) = additional.as_object() else {
        return Vec::new();
    };
    object
        .iter()
        .filter(|(k, _)| k.as_str() != "user_agent_info")
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => "none".to_owned(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// One page of events and the number of events the filter matches.
pub async fn list(
    db: &Db,
    filter: &Filter,
    sort: Sort,
    page: i64,
    per_page: i64,
) -> Result<(Vec<Listed>, i64), sqlx::Error> {
    let mut conditions: Vec<String> = Vec::new();
    let mut binds: Vec<Bind> = Vec::new();
    let next = |value: Bind, binds: &mut Vec<Bind>| {
        binds.push(value);
        format!("${}", binds.len())
    };
    if let Some(user_id) = &filter.user_id {
        let p = next(Bind::Text(user_id.clone()), &mut binds);
        conditions.push(format!("(source_type = 'user' AND source_id = {p})"));
    }
    if let Some(project_id) = &filter.project_id {
        let p = next(Bind::Text(project_id.clone()), &mut binds);
        let q = next(
            Bind::Text(format!("%\"project_id\":\"{project_id}\"%")),
            &mut binds,
        );
        conditions.push(format!(
            "((source_type = 'project' AND source_id = {p}) OR (source_type = 'file' AND additional LIKE {q}))"
        ));
    }
    if let Some(tag) = &filter.tag {
        let p = next(Bind::Text(tag.clone()), &mut binds);
        conditions.push(format!("tag = {p}"));
    }
    if let Some(ip) = &filter.ip_address {
        let p = next(Bind::Text(ip.clone()), &mut binds);
        conditions.push(format!("ip_address = {p}"));
    }
    if let Some(since) = filter.since {
        let p = next(Bind::Int(since), &mut binds);
        conditions.push(format!("time >= {p}"));
    }
    if let Some(until) = filter.until {
        let p = next(Bind::Int(until), &mut binds);
        conditions.push(format!("time < {p}"));
    }
    let clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let count_sql = format!("SELECT COUNT(*) FROM events {clause}");
    let mut count = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(count_sql)).persistent(false);
    for bind in &binds {
        count = bind.apply_as(count);
    }
    let (total,) = count.fetch_one(db.pool()).await?;
    let limit = next(Bind::Int(per_page), &mut binds);
    let offset = next(Bind::Int((page.max(1) - 1) * per_page), &mut binds);
    let sql = format!(
        "SELECT id, seq, source_type, source_id, tag, time, ip_address, user_agent, additional, prev_hash, hash \
         FROM events {clause} \
         ORDER BY {} LIMIT {limit} OFFSET {offset}",
        sort.order_by()
    );
    let mut query =
        sqlx::query_as::<_, super::EventRow>(sqlx::AssertSqlSafe(sql)).persistent(false);
    for bind in &binds {
        query = bind.apply_as(query);
    }
    let rows = query.fetch_all(db.pool()).await?;
    let listed = rows
        .into_iter()
        .map(|row| {
            let additional: Value = serde_json::from_str(&row.additional).unwrap_or_default();
            Listed {
                id: row.id,
                source_type: row.source_type,
                source_id: row.source_id,
                source_name: None,
                tag: row.tag,
                time: row.time,
                ip_address: row.ip_address,
                client: client(row.user_agent.as_deref(), &additional),
                details: details(&additional),
            }
        })
        .collect();
    Ok((with_source_names(db, listed).await?, total))
}

/// Fills in the names of the page's sources: one query per distinct source (a page is at
/// most a few dozen events), none for a deleted one.
async fn with_source_names(db: &Db, mut listed: Vec<Listed>) -> Result<Vec<Listed>, sqlx::Error> {
    let mut names: std::collections::HashMap<(String, String), Option<String>> =
        std::collections::HashMap::new();
    for event in &mut listed {
        let Some(id) = event.source_id.clone() else {
            continue;
        };
        let key = (event.source_type.clone(), id);
        if !names.contains_key(&key) {
            let name = match key.0.as_str() {
                "user" => crate::accounts::find_by_id(db, &key.1)
                    .await?
                    .map(|user| user.username),
                "project" => crate::packaging::project_name_of(db, &key.1).await?,
                "file" => crate::packaging::filename_of(db, &key.1).await?,
                _ => continue,
            };
            names.insert(key.clone(), name);
        }
        event.source_name = names[&key].clone();
    }
    Ok(listed)
}

enum Bind {
    Text(String),
    Int(i64),
}

impl Bind {
    fn apply_as<'q, O>(
        &self,
        query: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
        match self {
            Bind::Text(text) => query.bind(text.clone()),
            Bind::Int(n) => query.bind(*n),
        }
    }
}
