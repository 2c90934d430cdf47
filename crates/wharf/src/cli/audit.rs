//! `wharf audit verify|export|prune`: the command runner; the log's logic is in
//! `events::chain` and `events::audit`.

use std::io::Write;

use super::AuditCommand;
use crate::events::audit::{ExportFilter, export, prune};
use crate::events::chain;
use crate::state::AppState;

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
            export(&state.db, &filter, &mut out).await?;
            out.flush()?;
            Ok(())
        }
        AuditCommand::Prune { days } => {
            let Some(days) = days.or(state.settings.audit_retention_days) else {
                anyhow::bail!("give --days, or set audit_retention_days");
            };
            let pruned = prune(&state.db, &state.keys, state.clock.now_micros(), days).await?;
            println!("pruned {pruned} events older than {days} days");
            Ok(())
        }
    }
}
