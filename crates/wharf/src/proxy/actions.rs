//! What admins do about the upstream, from the command line (`wharf project claim`,
//! `wharf proxy block|unblock`) and `/admin/proxy/` alike: one transaction with its event.

use serde_json::json;

use super::store::{self, Block};
use crate::admin::actions::{AdminActor, AdminError};
use crate::db::Db;
use crate::events::{self, EventTag, Source};

/// `NAME` or `NAME==VERSION`, as `wharf proxy block` takes it: the normalised name and the
/// version in PEP 440's normal form (empty for the whole project).
pub fn parse_target(given: &str) -> Result<(String, String), AdminError> {
    let (name, version) = match given.split_once("==") {
        Some((name, version)) => (name.trim(), version.trim()),
        None => (given.trim(), ""),
    };
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid_name {
        return Err(AdminError::Refused(format!(
            "'{given}' is not a project name, or NAME==VERSION"
        )));
    }
    let version = if version.is_empty() {
        String::new()
    } else {
        let parsed = wharf_packaging::version::parse(version)
            .map_err(|_| AdminError::Refused(format!("'{version}' is not a PEP 440 version")))?;
        parsed.to_string()
    };
    Ok((wharf_packaging::name::normalize(name), version))
}

fn describe(name: &str, version: &str) -> String {
    if version.is_empty() {
        name.to_owned()
    } else {
        format!("{name}=={version}")
    }
}

/// Claims a name for a hosted project: it is never looked up upstream again, and a new
/// hosted project may take it. Returns the normalised name.
pub async fn claim(db: &Db, actor: &AdminActor<'_>, given: &str) -> Result<String, AdminError> {
    let (name, version) = parse_target(given)?;
    if !version.is_empty() {
        return Err(AdminError::Refused(
            "a claim is for a whole name, not a version".to_owned(),
        ));
    }
    if crate::packaging::find_project(db, &name).await?.is_some() {
        return Err(AdminError::Refused(format!(
            "'{name}' is a hosted project already"
        )));
    }
    let mut tx = db.begin().await?;
    let was_proxied = store::is_proxied(&mut tx, &name).await?;
    if !store::claim(&mut tx, &name, actor.name(), actor.now_micros).await? {
        return Err(AdminError::Refused(format!("'{name}' is claimed already")));
    }
    events::record(
        &mut tx,
        Source::Anonymous,
        EventTag::AdminProjectClaim,
        actor.meta,
        actor.now_micros,
        actor.details(json!({"project_name": name, "was_proxied": was_proxied})),
    )
    .await?;
    store::journal(&mut tx, &name, "", "claim", actor.name(), actor.now_micros).await?;
    tx.commit().await?;
    Ok(name)
}

/// Blocks an upstream project, or one version of it. Returns what is blocked (`NAME` or
/// `NAME==VERSION`).
pub async fn block(
    db: &Db,
    actor: &AdminActor<'_>,
    given: &str,
    reason: &str,
) -> Result<String, AdminError> {
    let (name, version) = parse_target(given)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AdminError::Refused(
            "say why (--reason): it is shown to whoever asks for a blocked file".to_owned(),
        ));
    }
    let what = describe(&name, &version);
    let block = Block {
        normalized_name: name,
        version,
        reason: reason.to_owned(),
        created_by: actor.name().to_owned(),
        created: actor.now_micros,
    };
    let mut tx = db.begin().await?;
    if !store::add_block(&mut tx, &block).await? {
        return Err(AdminError::Refused(format!("{what} is blocked already")));
    }
    events::record(
        &mut tx,
        Source::Anonymous,
        EventTag::AdminProxyBlock,
        actor.meta,
        actor.now_micros,
        actor.details(json!({
            "project_name": block.normalized_name,
            "version": block.version,
            "reason": block.reason,
        })),
    )
    .await?;
    store::journal(
        &mut tx,
        &block.normalized_name,
        &block.version,
        "upstream block",
        actor.name(),
        actor.now_micros,
    )
    .await?;
    tx.commit().await?;
    Ok(what)
}

/// Lifts a block. Returns what was blocked.
pub async fn unblock(db: &Db, actor: &AdminActor<'_>, given: &str) -> Result<String, AdminError> {
    let (name, version) = parse_target(given)?;
    let what = describe(&name, &version);
    let mut tx = db.begin().await?;
    if !store::remove_block(&mut tx, &name, &version).await? {
        return Err(AdminError::Refused(format!("{what} is not blocked")));
    }
    events::record(
        &mut tx,
        Source::Anonymous,
        EventTag::AdminProxyUnblock,
        actor.meta,
        actor.now_micros,
        actor.details(json!({"project_name": name, "version": version})),
    )
    .await?;
    store::journal(
        &mut tx,
        &name,
        &version,
        "upstream unblock",
        actor.name(),
        actor.now_micros,
    )
    .await?;
    tx.commit().await?;
    Ok(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_names_or_pinned_versions() {
        assert_eq!(
            parse_target("Foo_Bar").ok(),
            Some(("foo-bar".to_owned(), String::new()))
        );
        assert_eq!(
            parse_target("foo==1.0.0").ok(),
            Some(("foo".to_owned(), "1.0.0".to_owned()))
        );
        assert!(parse_target("foo==not a version").is_err());
        assert!(parse_target("foo/bar").is_err());
        assert!(parse_target("").is_err());
    }
}
