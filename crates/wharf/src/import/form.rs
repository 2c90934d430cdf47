//! The upload form of a file, as twine builds it: the core metadata of the file itself (a
//! wheel's `METADATA`, an sdist's `PKG-INFO`, read by the same archive readers as the upload
//! path) as form fields, plus the file type, Python version and digest.

use std::io::Write;
use std::path::Path;

use wharf_packaging::archive;
use wharf_packaging::filename::PackageType;

pub async fn fields(
    path: &Path,
    filename: &str,
    package_type: PackageType,
    sha256: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let (path, name) = (path.to_owned(), filename.to_owned());
    let metadata = tokio::task::spawn_blocking(move || read_metadata(&path, &name, package_type))
        .await?
        .map_err(|e| anyhow::anyhow!("Invalid distribution file. {e}"))?;
    let pyversion = match package_type {
        PackageType::Sdist => "source".to_owned(),
        // name-version(-build)?-python-abi-platform.whl
        PackageType::BdistWheel => {
            let parts: Vec<&str> = filename.trim_end_matches(".whl").split('-').collect();
            parts
                .len()
                .checked_sub(3)
                .and_then(|i| parts.get(i))
                .map_or_else(String::new, |s| (*s).to_owned())
        }
    };
    let mut fields = vec![
        (":action".to_owned(), "file_upload".to_owned()),
        ("protocol_version".to_owned(), "1".to_owned()),
        ("filetype".to_owned(), package_type.as_str().to_owned()),
        ("pyversion".to_owned(), pyversion),
        ("sha256_digest".to_owned(), sha256.to_owned()),
    ];
    fields.extend(metadata_fields(&metadata));
    Ok(fields)
}

fn read_metadata(
    path: &Path,
    filename: &str,
    package_type: PackageType,
) -> Result<Vec<u8>, String> {
    match package_type {
        PackageType::BdistWheel => {
            let mut parts = filename.split('-');
            let (Some(name), Some(version)) = (parts.next(), parts.next()) else {
                return Err(format!("Invalid wheel filename: {filename}"));
            };
            Ok(archive::inspect_wheel(path, filename, name, version, &[])?.metadata)
        }
        PackageType::Sdist => archive::inspect_sdist(path, filename, &[])?
            .pkg_info
            .ok_or_else(|| {
                format!("The sdist '{filename}' has no PKG-INFO: its metadata cannot be read.")
            }),
    }
}

/// The headers of a core metadata file as form fields (`Requires-Dist` → `requires_dist`,
/// repeated fields repeated), and the body, if any, as `description`.
pub fn metadata_fields(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut lines = text.split('\n');
    let mut body = None;
    for line in lines.by_ref() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            body = Some(());
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push('\n');
                // Old-style descriptions indent continuation lines with "       |".
                let continued = line.trim_start();
                value.push_str(continued.strip_prefix('|').unwrap_or(continued));
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            headers.push((form_key(key.trim()), value.trim().to_owned()));
        }
    }
    if body.is_some() {
        let rest: Vec<&str> = lines.collect();
        let description = rest.join("\n");
        if !description.trim().is_empty() && !headers.iter().any(|(k, _)| k == "description") {
            headers.push(("description".to_owned(), description));
        }
    }
    headers
}

/// twine's form key for a metadata field.
fn form_key(field: &str) -> String {
    let key = field.to_ascii_lowercase().replace('-', "_");
    match key.as_str() {
        "classifier" => "classifiers".to_owned(),
        "project_url" => "project_urls".to_owned(),
        _ => key,
    }
}

/// The `multipart/form-data` body twine sends.
pub fn multipart(
    boundary: &str,
    fields: &[(String, String)],
    filename: &str,
    content: Vec<u8>,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(content.len() + 4096);
    for (key, value) in fields {
        let _ = write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n"
        );
    }
    let _ = write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
        filename.replace(['"', '\r', '\n'], "_")
    );
    body.extend_from_slice(&content);
    let _ = write!(body, "\r\n--{boundary}--\r\n");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_becomes_twines_form() {
        let metadata = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nClassifier: A\nClassifier: B\nProject-URL: Home, https://x\nRequires-Dist: a>=1\n\nThe long\ndescription.\n";
        let fields = metadata_fields(metadata);
        let get = |k: &str| -> Vec<&str> {
            fields
                .iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("metadata_version"), ["2.1"]);
        assert_eq!(get("classifiers"), ["A", "B"]);
        assert_eq!(get("project_urls"), ["Home, https://x"]);
        assert_eq!(get("requires_dist"), ["a>=1"]);
        assert_eq!(get("description"), ["The long\ndescription.\n"]);
    }
}
