//! The upload's checks that need no database: the form's own fields (file type, Python
//! version, digests) and the file's contents (filename rules, archive inspection, the
//! metadata in the file against the form's).

use wharf_packaging::archive;
use wharf_packaging::filename::{self, PackageType, WheelFilename};
use wharf_packaging::metadata::{FileMetadata, Metadata};
use wharf_packaging::version;

use super::form::{Content, UploadForm};
use crate::config::AllowedPlatformTags;
use crate::error::{AppError, AppResult};
use crate::packaging::Project;

fn invalid_value(value: &str, field: &str, message: &str) -> AppError {
    AppError::bad_request(format!(
        "'{value}' is an invalid value for {field}. Error: {message} See https://packaging.python.org/specifications/core-metadata for more information."
    ))
}

/// The upload form's own fields (beyond metadata): file type, Python version, digests.
pub(super) struct UploadFields {
    pub(super) package_type: PackageType,
    pub(super) pyversion: String,
    pub(super) md5: Option<String>,
    pub(super) sha256: Option<String>,
    pub(super) blake2_256: Option<String>,
    pub(super) comment: Option<String>,
}

pub(super) fn upload_fields(form: &UploadForm) -> AppResult<UploadFields> {
    let filetype = form.get("filetype").unwrap_or_default();
    let package_type = PackageType::parse(filetype)
        .ok_or_else(|| invalid_value(filetype, "Filetype", "Use a known file type."))?;
    let pyversion = form.get("pyversion").filter(|v| !v.is_empty());
    let pyversion = match (package_type, pyversion) {
        (PackageType::Sdist, None | Some("source")) => "source".to_owned(),
        (PackageType::Sdist, Some(other)) => {
            return Err(invalid_value(
                other,
                "Pyversion",
                "Use 'source' as Python version for an sdist.",
            ));
        }
        (PackageType::BdistWheel, None) => {
            return Err(invalid_value(
                "",
                "Pyversion",
                "Python version is required for binary distribution uploads.",
            ));
        }
        (PackageType::BdistWheel, Some(v)) => v.to_owned(),
    };
    let digest = |key: &str, len: usize, field: &str| -> AppResult<Option<String>> {
        match form.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) if v.len() == len && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Some(v.to_ascii_lowercase()))
            }
            Some(v) => Err(invalid_value(v, field, "Use a valid, hex-encoded, digest.")),
        }
    };
    let fields = UploadFields {
        package_type,
        pyversion,
        md5: digest("md5_digest", 32, "MD5-Digest")?,
        sha256: digest("sha256_digest", 64, "SHA256-Digest")?,
        blake2_256: digest("blake2_256_digest", 64, "Blake2-256-Digest")?,
        comment: form
            .get("comment")
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
    };
    if fields.md5.is_none() && fields.sha256.is_none() && fields.blake2_256.is_none() {
        return Err(AppError::bad_request(
            "Include at least one message digest.",
        ));
    }
    Ok(fields)
}

/// Filename rules and archive inspection. Returns the wheel's METADATA for PEP 658.
pub(super) async fn inspect(
    project: &Project,
    metadata: &Metadata,
    parsed_version: &version::Version,
    package_type: PackageType,
    content: &Content,
    allowed_platform_tags: &AllowedPlatformTags,
) -> AppResult<Option<Vec<u8>>> {
    let prefix = project.normalized_name.replace('-', "_");
    let license_files = if metadata.metadata_version.as_str() >= "2.4" {
        metadata.license_files.clone()
    } else {
        Vec::new()
    };
    let path = content.file.path().to_owned();
    match package_type {
        PackageType::Sdist => {
            let expected =
                filename::expected_sdist_filename(&project.normalized_name, parsed_version);
            if !content
                .filename
                .to_ascii_lowercase()
                .starts_with(&format!("{prefix}-"))
            {
                return Err(AppError::bad_request(format!(
                    "Start filename for '{}' with '{prefix}'.",
                    project.name
                )));
            }
            if content.filename != expected {
                return Err(AppError::bad_request(format!(
                    "Filename '{}' is invalid, should be '{expected}'.",
                    content.filename
                )));
            }
            let filename = content.filename.clone();
            let contents =
                blocking(move || archive::inspect_sdist(&path, &filename, &license_files)).await?;
            // Before metadata 2.2 an sdist's PKG-INFO need not describe what it builds.
            let pkg_info = contents.pkg_info.as_deref().map(FileMetadata::parse);
            if let Some(pkg_info) = pkg_info.filter(|p| p.is_at_least(2, 2)) {
                pkg_info
                    .check_matches(metadata, "PKG-INFO")
                    .map_err(invalid_file)?;
            }
            Ok(None)
        }
        PackageType::BdistWheel => {
            let wheel = WheelFilename::parse(&content.filename).map_err(AppError::bad_request)?;
            if let Some(tag) = wheel
                .platform_tags
                .iter()
                .find(|t| !filename::is_allowed_platform_tag(t) && !allowed_platform_tags.allows(t))
            {
                return Err(AppError::bad_request(format!(
                    "Binary wheel '{}' has an unsupported platform tag '{tag}'.",
                    content.filename
                )));
            }
            if wheel.name != prefix {
                return Err(AppError::bad_request(format!(
                    "Filename '{}' should contain the normalized project name '{prefix}', not '{}'.",
                    content.filename, wheel.name
                )));
            }
            if &wheel.version != parsed_version {
                return Err(AppError::bad_request(format!(
                    "Version in filename should be '{parsed_version}' not '{}'.",
                    wheel.version
                )));
            }
            let raw_version = content
                .filename
                .split('-')
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let (filename, wheel_name) = (content.filename.clone(), wheel.name.clone());
            let contents = blocking(move || {
                archive::inspect_wheel(&path, &filename, &wheel_name, &raw_version, &license_files)
            })
            .await?;
            // Installers read this METADATA (PEP 658), the index shows the form: they agree.
            FileMetadata::parse(&contents.metadata)
                .check_matches(metadata, "METADATA")
                .map_err(invalid_file)?;
            Ok(Some(contents.metadata))
        }
    }
}

fn invalid_file(message: String) -> AppError {
    AppError::bad_request(format!("Invalid distribution file. {message}"))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> AppResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(AppError::internal)?
        .map_err(invalid_file)
}
