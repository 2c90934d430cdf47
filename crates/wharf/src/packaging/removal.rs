//! Yanking and deleting: each change is one transaction with its journal entry (so mirrors
//! and other processes see it) and its events. Deleted files' names stay in the registry and
//! can never be uploaded again; their blobs are queued for removal in the same transaction
//! (`blobs::purge_deleted` removes them once it has committed).

use serde_json::json;

use super::{Project, blobs, journal};
use crate::actor::Actor;
use crate::db::Db;
use crate::events::{self, EventTag, Source};

/// Yanks (`Some(reason)`) or un-yanks (`None`) a release. `false` when there is no such
/// release.
pub async fn set_yanked(
    db: &Db,
    project: &Project,
    version: &str,
    yank: Option<&str>,
    actor: &Actor<'_>,
) -> Result<bool, sqlx::Error> {
    let yanked = yank.is_some();
    let reason = yank.unwrap_or_default();
    let mut tx = db.begin().await?;
    let updated = sqlx::query(
        "UPDATE releases SET yanked = $1, yanked_reason = $2, yanked_date = $3 \
         WHERE project_id = $4 AND version = $5",
    )
    .bind(i64::from(yanked))
    .bind(if yanked { reason } else { "" })
    .bind(yanked.then_some(actor.now_micros))
    .bind(&project.id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    let (action, tag) = if yanked {
        ("yank release", EventTag::ProjectReleaseYank)
    } else {
        ("unyank release", EventTag::ProjectReleaseUnyank)
    };
    journal(
        &mut tx,
        project,
        Some(version),
        action,
        &actor.user.username,
        actor.now_micros,
    )
    .await?;
    let mut additional = json!({"submitted_by": actor.user.username, "canonical_version": version});
    if yanked {
        additional["yanked_reason"] = json!(reason);
    }
    events::record(
        &mut tx,
        Source::Project(&project.id),
        tag,
        actor.meta,
        actor.now_micros,
        additional,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// id, filename, size, blob path
type FileRow = (String, String, i64, String);

async fn remove_files(
    tx: &mut sqlx::AnyConnection,
    project: &Project,
    files: Vec<FileRow>,
    version: &str,
    actor: &Actor<'_>,
) -> Result<(), sqlx::Error> {
    for (id, filename, size, path) in files {
        blobs::queue_deletion(tx, &path, actor.now_micros).await?;
        sqlx::query("DELETE FROM files WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE projects SET total_size = total_size - $1 WHERE id = $2")
            .bind(size)
            .bind(&project.id)
            .execute(&mut *tx)
            .await?;
        journal(
            tx,
            project,
            Some(version),
            &format!("remove file {filename}"),
            &actor.user.username,
            actor.now_micros,
        )
        .await?;
        events::record(
            tx,
            Source::File(&id),
            EventTag::FileRemove,
            actor.meta,
            actor.now_micros,
            json!({"filename": filename, "submitted_by": actor.user.username, "canonical_version": version, "project_id": project.id}),
        )
        .await?;
    }
    Ok(())
}

/// Deletes a release with its files. `false` when there is no such release.
pub async fn delete_release(
    db: &Db,
    project: &Project,
    version: &str,
    actor: &Actor<'_>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let release: Option<(String,)> =
        sqlx::query_as("SELECT id FROM releases WHERE project_id = $1 AND version = $2")
            .bind(&project.id)
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((release_id,)) = release else {
        return Ok(false);
    };
    let files: Vec<FileRow> = sqlx::query_as(
        "SELECT id, filename, size, path FROM files WHERE release_id = $1 ORDER BY filename",
    )
    .bind(&release_id)
    .fetch_all(&mut *tx)
    .await?;
    remove_files(&mut tx, project, files, version, actor).await?;
    sqlx::query("DELETE FROM releases WHERE id = $1")
        .bind(&release_id)
        .execute(&mut *tx)
        .await?;
    journal(
        &mut tx,
        project,
        Some(version),
        "remove release",
        &actor.user.username,
        actor.now_micros,
    )
    .await?;
    events::record(
        &mut tx,
        Source::Project(&project.id),
        EventTag::ProjectReleaseRemove,
        actor.meta,
        actor.now_micros,
        json!({"submitted_by": actor.user.username, "canonical_version": version}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Deletes one file of a release. `false` when the release has no such file.
pub async fn delete_file(
    db: &Db,
    project: &Project,
    version: &str,
    filename: &str,
    actor: &Actor<'_>,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let files: Vec<FileRow> = sqlx::query_as(
        "SELECT f.id, f.filename, f.size, f.path FROM files f JOIN releases r ON r.id = f.release_id \
         WHERE r.project_id = $1 AND r.version = $2 AND f.filename = $3",
    )
    .bind(&project.id)
    .bind(version)
    .bind(filename)
    .fetch_all(&mut *tx)
    .await?;
    if files.is_empty() {
        return Ok(false);
    }
    remove_files(&mut tx, project, files, version, actor).await?;
    tx.commit().await?;
    Ok(true)
}

/// Deletes the project with its releases, files, roles and invitations.
pub async fn delete_project(
    db: &Db,
    project: &Project,
    actor: &Actor<'_>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    delete_project_in(
        &mut tx,
        project,
        &actor.user.username,
        actor.meta,
        actor.now_micros,
    )
    .await?;
    tx.commit().await
}

/// [`delete_project`] inside the caller's transaction, for a deletion by `submitted_by` (a
/// username, or what stands for the command line): an admin's deletion records its own event
/// with it.
pub async fn delete_project_in(
    tx: &mut sqlx::AnyConnection,
    project: &Project,
    submitted_by: &str,
    meta: &crate::events::RequestMeta,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    journal(
        tx,
        project,
        None,
        "remove project",
        submitted_by,
        now_micros,
    )
    .await?;
    events::record(
        tx,
        Source::Project(&project.id),
        EventTag::ProjectRemove,
        meta,
        now_micros,
        json!({"submitted_by": submitted_by, "project_name": project.name}),
    )
    .await?;
    let paths: Vec<(String,)> = sqlx::query_as("SELECT path FROM files WHERE project_id = $1")
        .bind(&project.id)
        .fetch_all(&mut *tx)
        .await?;
    for (path,) in paths {
        blobs::queue_deletion(tx, &path, now_micros).await?;
    }
    for table in ["role_invitations", "roles", "files", "releases"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE project_id = $1"
        )))
        .bind(&project.id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DELETE FROM projects WHERE id = $1")
        .bind(&project.id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
