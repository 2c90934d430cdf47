//! A project's settings: whether its Owners and Maintainers must use two-factor
//! authentication, whether only trusted publishers may upload, its upload limit. Each
//! change and its event are one transaction.

use serde_json::json;

use super::Project;
use crate::actor::Actor;
use crate::db::Db;
use crate::events::{self, EventTag, RequestMeta, Source};

/// A project's on/off settings, each a column of `projects` with an event either way.
#[derive(Clone, Copy, Debug)]
pub enum Switch {
    /// "Owners and Maintainers must use 2FA".
    OwnersRequire2fa,
    /// "Only trusted publishers may upload".
    TrustedPublishingOnly,
}

impl Switch {
    fn column(self) -> &'static str {
        match self {
            Switch::OwnersRequire2fa => "owners_require_2fa",
            Switch::TrustedPublishingOnly => "trusted_publishing_only",
        }
    }

    fn tag(self, enable: bool) -> EventTag {
        match (self, enable) {
            (Switch::OwnersRequire2fa, true) => EventTag::ProjectOwnersRequire2faEnabled,
            (Switch::OwnersRequire2fa, false) => EventTag::ProjectOwnersRequire2faDisabled,
            (Switch::TrustedPublishingOnly, true) => EventTag::ProjectTrustedPublishingOnlyEnabled,
            (Switch::TrustedPublishingOnly, false) => {
                EventTag::ProjectTrustedPublishingOnlyDisabled
            }
        }
    }
}

/// Turns `switch` on or off, with its event (`details`) in the same transaction. Setting it
/// to what it already is changes nothing and records nothing; `true` when it changed.
pub async fn set_switch(
    db: &Db,
    project: &Project,
    switch: Switch,
    enable: bool,
    meta: &RequestMeta,
    now_micros: i64,
    details: serde_json::Value,
) -> Result<bool, sqlx::Error> {
    let column = switch.column();
    let mut tx = db.begin().await?;
    let changed = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE projects SET {column} = $1 WHERE id = $2 AND {column} <> $1"
    )))
    .bind(i64::from(enable))
    .bind(&project.id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if changed {
        events::record(
            &mut tx,
            Source::Project(&project.id),
            switch.tag(enable),
            meta,
            now_micros,
            details,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// Turns "Owners and Maintainers must use 2FA" on or off; `true` when it changed.
pub async fn set_owners_require_2fa(
    db: &Db,
    project: &Project,
    enable: bool,
    actor: &Actor<'_>,
) -> Result<bool, sqlx::Error> {
    let details = json!({"modified_by": actor.user.username});
    set_switch(
        db,
        project,
        Switch::OwnersRequire2fa,
        enable,
        actor.meta,
        actor.now_micros,
        details,
    )
    .await
}

/// Sets the project's own upload size limit in bytes (`None`: the index's default again).
/// The caller checks the bounds; forklift uses the larger of this and the default.
pub async fn set_upload_limit(
    conn: &mut sqlx::AnyConnection,
    project_id: &str,
    limit: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE projects SET upload_limit = $1 WHERE id = $2")
        .bind(limit)
        .bind(project_id)
        .execute(conn)
        .await?;
    Ok(())
}
