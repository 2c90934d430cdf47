//! A project's settings: today, whether its Owners and Maintainers must use two-factor
//! authentication. The change and its event are one transaction.

use serde_json::json;

use super::Project;
use crate::actor::Actor;
use crate::db::Db;
use crate::events::{self, EventTag, Source};

/// Turns "Owners and Maintainers must use 2FA" on or off. Setting it to what it already is
/// changes nothing and records nothing; `true` when it changed.
pub async fn set_owners_require_2fa(
    db: &Db,
    project: &Project,
    enable: bool,
    actor: &Actor<'_>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let changed = sqlx::query(
        "UPDATE projects SET owners_require_2fa = $1 WHERE id = $2 AND owners_require_2fa <> $1",
    )
    .bind(i64::from(enable))
    .bind(&project.id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if changed {
        let tag = if enable {
            EventTag::ProjectOwnersRequire2faEnabled
        } else {
            EventTag::ProjectOwnersRequire2faDisabled
        };
        events::record(
            &mut tx,
            Source::Project(&project.id),
            tag,
            actor.meta,
            actor.now_micros,
            json!({"modified_by": actor.user.username}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(changed)
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
