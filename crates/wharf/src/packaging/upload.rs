//! The rows of one upload, written in the upload's transaction: the project (when new, with
//! the uploader as its Owner), the release (when new), the file, the journal lines and the
//! events. Forklift checks and stores the blobs first; this only records what it accepted.

use sqlx::AnyConnection;

use super::{NewFile, NewRelease, Project, Role};
use crate::events::{Batch, EventTag, Source};

/// What an accepted upload adds.
pub struct Publish<'a> {
    pub project: &'a Project,
    /// The project does not exist yet: create it, with the uploader as its Owner.
    pub new_project: bool,
    /// The name as this upload writes it (it may change how an existing name is written).
    pub display_name: &'a str,
    /// The uploading user; `None` for a trusted publisher (which never creates a project).
    pub uploader_id: Option<&'a str>,
    pub uploader_name: &'a str,
    pub version: &'a str,
    pub canonical_version: &'a str,
    /// The release to create, or `None` when the file joins an existing one.
    pub new_release: Option<NewRelease<'a>>,
    pub file: NewFile<'a>,
    /// The token the upload was made with, for the `file:add` event.
    pub token_id: &'a str,
    /// The trusted publisher and CI run, when its token made the upload.
    pub publisher: Option<serde_json::Value>,
}

/// Whether the rows went in, or a parallel upload committed the same project, release or
/// file first (the transaction must then be dropped, and the upload looked at again).
#[derive(Debug, PartialEq, Eq)]
pub enum Published {
    Done,
    Raced,
}

/// Writes the upload's rows and adds its events to `batch` (flushed by the caller with the
/// token's use, before one commit).
pub async fn publish(
    conn: &mut AnyConnection,
    batch: &mut Batch<'_>,
    upload: &Publish<'_>,
    now_micros: i64,
) -> Result<Published, sqlx::Error> {
    let project = upload.project;
    let user = upload.uploader_name;
    if upload.new_project
        && let Some(uploader_id) = upload.uploader_id
    {
        if !create_project(conn, batch, project, uploader_id, user, now_micros).await? {
            return Ok(Published::Raced);
        }
    } else if project.name != upload.display_name {
        super::rename_display(conn, &project.id, upload.display_name).await?;
    }
    if let Some(release) = &upload.new_release {
        match super::insert_release(conn, release, now_micros).await {
            Err(error) if crate::db::is_unique_violation(&error) => return Ok(Published::Raced),
            other => other?,
        }
        let version = Some(upload.version);
        super::journal(conn, project, version, "new release", user, now_micros).await?;
        batch.add(
            Source::Project(&project.id),
            EventTag::ProjectReleaseAdd,
            serde_json::json!({"submitted_by": user, "canonical_version": upload.canonical_version}),
        );
    }
    let file = &upload.file;
    match super::insert_file(conn, file, now_micros).await {
        // The same filename or content was committed meanwhile: the next attempt answers
        // as for any re-upload ("File already exists", or OK for the identical file).
        Err(error) if crate::db::is_unique_violation(&error) => return Ok(Published::Raced),
        other => other?,
    }
    let action = format!("add {} file {}", file.python_version, file.filename);
    super::journal(
        conn,
        project,
        Some(upload.version),
        &action,
        user,
        now_micros,
    )
    .await?;
    let mut added = serde_json::json!({
        "filename": file.filename,
        "submitted_by": user,
        "canonical_version": upload.canonical_version,
        "project_id": project.id,
        "macaroon_id": upload.token_id,
        "uploaded_via_trusted_publisher": upload.publisher.is_some(),
    });
    if let Some(publisher) = &upload.publisher {
        added["publisher"] = publisher.clone();
    }
    batch.add(Source::File(file.id), EventTag::FileAdd, added);
    Ok(Published::Done)
}

/// Creates `project` with `owner` as its Owner: the rows, the journal lines and the events
/// (added to `batch`). `false` when another request created the same name first.
pub async fn create_project(
    conn: &mut AnyConnection,
    batch: &mut Batch<'_>,
    project: &Project,
    owner_id: &str,
    owner_name: &str,
    now_micros: i64,
) -> Result<bool, sqlx::Error> {
    if !super::insert_project(conn, project, now_micros).await? {
        return Ok(false);
    }
    super::insert_role(conn, &project.id, owner_id, Role::Owner, now_micros).await?;
    super::journal(conn, project, None, "create", owner_name, now_micros).await?;
    let action = format!("add Owner {owner_name}");
    super::journal(conn, project, None, &action, owner_name, now_micros).await?;
    batch.add(
        Source::Project(&project.id),
        EventTag::ProjectCreate,
        serde_json::json!({"created_by": owner_name}),
    );
    batch.add(
        Source::Project(&project.id),
        EventTag::ProjectRoleAdd,
        serde_json::json!({"submitted_by": owner_name, "role_name": "Owner", "target_user": owner_name}),
    );
    batch.add(
        Source::User(owner_id),
        EventTag::AccountRoleAdd,
        serde_json::json!({"submitted_by": owner_name, "role_name": "Owner", "project_name": project.name}),
    );
    Ok(true)
}
