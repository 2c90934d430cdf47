//! What `wharf import` reads and writes beside the upload path: whether a file is already
//! here, and what its in-process upload carries (the source's upload time, the import event).

use sqlx::AnyConnection;

use crate::db::Db;

/// What `wharf import` attaches to the in-process upload it makes (as a request extension,
/// which no HTTP client can set): the source's upload time and the import event's details,
/// written in the upload's own transaction.
#[derive(Clone, Debug)]
pub struct ImportMark {
    pub upload_time_micros: Option<i64>,
    pub details: serde_json::Value,
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
