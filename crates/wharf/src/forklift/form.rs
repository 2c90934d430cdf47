//! Reading the upload form: text fields into memory (bounded), the distribution file streamed
//! to a temporary file while it is hashed, with the size limit enforced as the bytes arrive.

use std::io::Write;

use axum::extract::multipart::{Field, Multipart};
use blake2::Blake2b;
use blake2::digest::consts::U32;
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

/// Text fields may not exceed this in total (descriptions can be long, but not unbounded).
const MAX_TEXT_BYTES: usize = 8 * 1024 * 1024;

/// The uploaded distribution, on local disk, with its digests.
pub struct Content {
    pub filename: String,
    pub content_type: Option<String>,
    pub file: tempfile::NamedTempFile,
    pub size: u64,
    pub md5: String,
    pub sha256: String,
    pub blake2_256: String,
}

pub struct UploadForm {
    pub fields: Vec<(String, String)>,
    pub content: Option<Content>,
}

impl UploadForm {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Decides the size limit for the file once the fields read so far are known (warehouse's
/// limit depends on the project, named by the `name` field that clients send first).
pub(crate) trait LimitFor {
    async fn limit_for(&self, fields: &[(String, String)]) -> AppResult<(u64, String)>;
}

fn malformed(error: impl std::fmt::Display) -> AppError {
    AppError::bad_request(format!("Malformed multipart/form-data request: {error}"))
}

pub(crate) async fn read(
    mut multipart: Multipart,
    tmp_dir: &std::path::Path,
    limits: &impl LimitFor,
) -> AppResult<UploadForm> {
    let mut fields = Vec::new();
    let mut text_bytes = 0usize;
    let mut content = None;
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        match (name.as_str(), field.file_name()) {
            ("content", _) => {
                if content.is_some() {
                    return Err(AppError::bad_request(
                        "Upload payload has more than one file.",
                    ));
                }
                let (limit, project) = limits.limit_for(&fields).await?;
                content = Some(stream_content(field, tmp_dir, limit, &project).await?);
            }
            // Signatures are no longer stored (PyPI removed PGP support in 2023).
            ("gpg_signature", _) => drain(field).await?,
            (_, Some(_)) => {
                return Err(AppError::bad_request(format!(
                    "{name}: Should not be a tuple."
                )));
            }
            _ => {
                let bytes = field.bytes().await.map_err(malformed)?;
                text_bytes += bytes.len();
                if text_bytes > MAX_TEXT_BYTES {
                    return Err(AppError::bad_request(
                        "The upload form's fields are too large.",
                    ));
                }
                let value = String::from_utf8(bytes.to_vec()).map_err(|_| {
                    AppError::bad_request(format!("{name}: Field is not valid UTF-8."))
                })?;
                fields.push((name, value));
            }
        }
    }
    Ok(UploadForm { fields, content })
}

async fn drain(mut field: Field<'_>) -> AppResult<()> {
    while field.chunk().await.map_err(malformed)?.is_some() {}
    Ok(())
}

async fn stream_content(
    mut field: Field<'_>,
    tmp_dir: &std::path::Path,
    limit: u64,
    project: &str,
) -> AppResult<Content> {
    let filename = field.file_name().unwrap_or_default().to_owned();
    let content_type = field.content_type().map(str::to_owned);
    let mut file = tempfile::NamedTempFile::new_in(tmp_dir).map_err(AppError::from)?;
    let (mut md5, mut sha256, mut blake2) = (Md5::new(), Sha256::new(), Blake2b::<U32>::new());
    let mut size = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
        size += chunk.len() as u64;
        if size > limit {
            return Err(super::file_too_large(project, limit));
        }
        md5.update(&chunk);
        sha256.update(&chunk);
        blake2.update(&chunk);
        // Small synchronous writes to a local temporary file: cheaper than a blocking task each.
        file.write_all(&chunk).map_err(AppError::from)?;
    }
    file.flush().map_err(AppError::from)?;
    Ok(Content {
        filename,
        content_type,
        file,
        size,
        md5: hex::encode(md5.finalize()),
        sha256: hex::encode(sha256.finalize()),
        blake2_256: hex::encode(blake2.finalize()),
    })
}
