//! `wharf audit …`, and the tasks of `serve` that keep the log sealed and pruned.

use std::io::Write;
use std::time::Duration;

use futures_util::TryStreamExt;

use super::chain;
use crate::app::AppState;
use crate::cli::AuditCommand;

pub async fn run(state: &AppState, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { head } => {
            let head = head
                .map(|text| chain::Head::parse(&text))
                .transpose()
                .map_err(|e| anyhow::anyhow!("invalid --head: {e}"))?;
            let sealed = chain::seal(&state.db, &state.keys).await?;
            let report = chain::verify(
                &state.db,
                &state.keys,
                &state.settings.data_dir,
                head.as_ref(),
            )
            .await?;
            match report.problem {
                None => {
                    println!(
                        "the audit log is intact: {} events checked ({sealed} newly sealed)",
                        report.checked
                    );
                    Ok(())
                }
                Some(problem) => anyhow::bail!(
                    "the audit log was tampered with: {problem} ({} events checked before it)",
                    report.checked
                ),
            }
        }
        AuditCommand::Export {
            since,
            until,
            user,
            project,
        } => {
            let time = |value: Option<String>, name: &str| -> anyhow::Result<Option<i64>> {
                value
                    .map(|v| {
                        time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
                            .map(|t| (t.unix_timestamp_nanos() / 1000) as i64)
                            .map_err(|e| anyhow::anyhow!("invalid --{name} '{v}': {e} (use RFC 3339, e.g. 2026-11-01T00:00:00Z)"))
                    })
                    .transpose()
            };
            let since = time(since, "since")?;
            let until = time(until, "until")?;
            let user_id = match user {
                Some(name) => Some(
                    crate::accounts::find_by_username(&state.db, &name)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no user named '{name}'"))?
                        .id,
                ),
                None => None,
            };
            let project_id = match project {
                Some(name) => Some(
                    crate::packaging::find_project(
                        &state.db,
                        &wharf_packaging::name::normalize(&name),
                    )
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no project named '{name}'"))?
                    .id,
                ),
                None => None,
            };
            chain::seal(&state.db, &state.keys).await?;
            let filter = ExportFilter {
                since,
                until,
                user_id: user_id.as_deref(),
                project_id: project_id.as_deref(),
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            export(state, &filter, &mut out).await?;
            out.flush()?;
            Ok(())
        }
        AuditCommand::Prune { days } => {
            let Some(days) = days.or(state.settings.audit_retention_days) else {
                anyhow::bail!("give --days, or set audit_retention_days");
            };
            let pruned = prune(state, days).await?;
            println!("pruned {pruned} events older than {days} days");
            Ok(())
        }
    }
}

type ExportRow = (
    i64,
    Option<i64>,
    String,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

/// Which events to export (all when empty).
#[derive(Default)]
pub struct ExportFilter<'a> {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub user_id: Option<&'a str>,
    pub project_id: Option<&'a str>,
}

/// Writes the events as JSON Lines, oldest first. Returns how many.
pub async fn export(
    state: &AppState,
    filter: &ExportFilter<'_>,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut rows = sqlx::query_as::<_, ExportRow>(
        "SELECT id, seq, source_type, source_id, tag, time, ip_address, user_agent, additional, hash \
         FROM events \
         WHERE ($1 IS NULL OR time >= $1) AND ($2 IS NULL OR time < $2) \
           AND ($3 IS NULL OR (source_type = 'user' AND source_id = $3)) \
           AND ($4 IS NULL OR (source_type = 'project' AND source_id = $4) \
                OR (source_type = 'file' AND additional LIKE '%\"project_id\":\"' || $4 || '\"%')) \
         ORDER BY seq, id",
    )
    .bind(filter.since)
    .bind(filter.until)
    .bind(filter.user_id)
    .bind(filter.project_id)
    .fetch(state.db.pool());
    let mut count = 0;
    while let Some((id, seq, source_type, source_id, tag, time, ip, ua, additional, hash)) =
        rows.try_next().await?
    {
        let line = serde_json::json!({
            "id": id,
            "seq": seq,
            "source_type": source_type,
            "source_id": source_id,
            "tag": tag,
            "time": crate::clock::iso8601_micros(time),
            "ip_address": ip,
            "user_agent": ua,
            "additional": serde_json::from_str::<serde_json::Value>(&additional).unwrap_or_default(),
            "hash": hash,
        });
        writeln!(out, "{line}")?;
        count += 1;
    }
    Ok(count)
}

/// Deletes events older than `days`, behind a signed checkpoint.
pub async fn prune(state: &AppState, days: u32) -> anyhow::Result<u64> {
    let now = state.clock.now_micros();
    let before = now - i64::from(days) * 86_400 * 1_000_000;
    Ok(chain::prune(&state.db, &state.keys, before, now).await?)
}

/// How often, at most, the sealer writes a signed head: removing events newer than the last
/// head cannot be told from a shorter log, so this is the window; a head costs a log line, a
/// small file and one row.
pub const HEAD_EVERY_SECS: i64 = 30;

/// When the sealer last wrote a head, and of which event.
#[derive(Debug, Default)]
pub struct HeadWriter {
    last_seq: Option<i64>,
    last_time: Option<i64>,
}

impl HeadWriter {
    /// Writes a head when the last one is `HEAD_EVERY_SECS` old and the chain has grown since.
    pub async fn tick(&mut self, state: &AppState) -> Result<(), chain::ChainError> {
        let now = state.clock.now_micros();
        if self
            .last_time
            .is_some_and(|last| now - last < HEAD_EVERY_SECS * 1_000_000)
        {
            return Ok(());
        }
        if let Some(head) = chain::write_head(
            &state.db,
            &state.keys,
            &state.settings.data_dir,
            now,
            self.last_seq,
        )
        .await?
        {
            self.last_seq = Some(head.seq);
            self.last_time = Some(now);
        }
        Ok(())
    }
}

/// Seals new events twice a second, writes a signed head now and then, and prunes once a day
/// when a retention is set.
pub fn spawn_sealer(state: AppState) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        let mut ticks: u64 = 0;
        let mut heads = HeadWriter::default();
        loop {
            ticker.tick().await;
            match chain::seal(&state.db, &state.keys).await {
                Ok(_) => {
                    if let Err(e) = heads.tick(&state).await {
                        tracing::warn!(error = %e, "cannot write the audit head");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot seal audit events"),
            }
            ticks += 1;
            if let Some(days) = state.settings.audit_retention_days
                && ticks % (2 * 86_400) == 1
                && let Err(e) = prune(&state, days).await
            {
                tracing::warn!(error = %e, "cannot prune audit events");
            }
        }
    });
}
