//! What `wharf import` reads and writes beside the upload path: whether a file is already
//! here, and the source's upload time for a file the upload just stored.

use sqlx::AnyConnection;

use crate::db::Db;

/// A file row as `wharf import` checks it after its upload: which row, whose project, and the
/// content that was stored under the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedFile {
    pub id: String,
    pub project_normalized_name: String,
    pub sha256_digest: String,
}

/// The file stored under `filename`, with its project's normalised name.
pub async fn find_file_by_name(
    db: &Db,
    filename: &str,
) -> Result<Option<ImportedFile>, sqlx::Error> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT f.id, p.normalized_name, f.sha256_digest FROM files f \
         JOIN projects p ON p.id = f.project_id WHERE f.filename = $1",
    )
    .bind(filename)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(
        |(id, project_normalized_name, sha256_digest)| ImportedFile {
            id,
            project_normalized_name,
            sha256_digest,
        },
    ))
}

/// The SHA-256 (hex) of the file stored under `filename`, if there is one.
pub async fn sha256_of_filename(db: &Db, filename: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT sha256_digest FROM files WHERE filename = $1")
            .bind(filename)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|(s,)| s))
}

/// Gives an imported file the upload time it had at its source (microseconds), in the
/// import's transaction.
pub async fn set_upload_time(
    conn: &mut AnyConnection,
    file_id: &str,
    upload_time_micros: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE files SET upload_time = $1 WHERE id = $2")
        .bind(upload_time_micros)
        .bind(file_id)
        .execute(conn)
        .await?;
    Ok(())
}
