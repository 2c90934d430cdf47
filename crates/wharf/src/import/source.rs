//! Where an import's files come from, and what each source says about them: a directory
//! tree, a PEP 691 (JSON) or PEP 503 (HTML) Simple index, or a devpi index's JSON API.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

/// One file the source offers.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub filename: String,
    pub origin: Origin,
    /// The source's SHA-256 of the file, checked after download.
    pub sha256: Option<String>,
    /// The source's upload time (unix microseconds), kept on the imported file.
    pub upload_time: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum Origin {
    Local(PathBuf),
    Remote(Url),
}

impl Origin {
    pub fn describe(&self) -> String {
        match self {
            Origin::Local(path) => path.display().to_string(),
            Origin::Remote(url) => redact(url),
        }
    }
}

/// A URL without the user and password it may carry.
pub fn redact(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// Every file under `root` (hidden files and directories skipped), sorted by path.
pub fn directory(root: &Path) -> anyhow::Result<Vec<Candidate>> {
    if !root.is_dir() {
        anyhow::bail!("{} is not a directory", root.display());
    }
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                // pypiserver has no upload time but the file's: it wrote the file on upload.
                let upload_time = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_micros() as i64);
                found.push(Candidate {
                    filename: name,
                    origin: Origin::Local(entry.path()),
                    sha256: None,
                    upload_time,
                });
            }
        }
    }
    found.sort_by_key(|c| c.origin.describe());
    Ok(found)
}

const SIMPLE_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1";

async fn get(
    client: &reqwest::Client,
    url: &Url,
    accept: &str,
) -> anyhow::Result<(String, Vec<u8>)> {
    let response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, accept)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot fetch {}: {e}", redact(url)))?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("{} answered {status}", redact(url));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .bytes()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", redact(url)))?;
    Ok((content_type, body.to_vec()))
}

#[derive(Deserialize)]
struct SimpleRoot {
    projects: Vec<SimpleName>,
}

#[derive(Deserialize)]
struct SimpleName {
    name: String,
}

#[derive(Deserialize)]
struct SimpleProject {
    files: Vec<SimpleFile>,
}

#[derive(Deserialize)]
struct SimpleFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::HashMap<String, String>,
    #[serde(rename = "upload-time")]
    upload_time: Option<String>,
}

/// The project pages of a Simple index root (`…/simple/`).
pub async fn simple_projects(client: &reqwest::Client, root: &Url) -> anyhow::Result<Vec<Url>> {
    let (content_type, body) = get(client, root, SIMPLE_ACCEPT).await?;
    let names: Vec<String> = if content_type.contains("json") {
        let parsed: SimpleRoot = serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("{} is not a PEP 691 index: {e}", redact(root)))?;
        parsed.projects.into_iter().map(|p| p.name).collect()
    } else {
        anchors(&String::from_utf8_lossy(&body))
            .into_iter()
            .map(|(_, text)| text)
            .collect()
    };
    names
        .iter()
        .map(|name| {
            root.join(&format!("{}/", wharf_packaging::name::normalize(name)))
                .map_err(|e| anyhow::anyhow!("bad project URL for '{name}': {e}"))
        })
        .collect()
}

/// The files of one Simple project page.
pub async fn simple_files(client: &reqwest::Client, page: &Url) -> anyhow::Result<Vec<Candidate>> {
    let (content_type, body) = get(client, page, SIMPLE_ACCEPT).await?;
    let mut found = Vec::new();
    if content_type.contains("json") {
        let parsed: SimpleProject = serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("{} is not a PEP 691 page: {e}", redact(page)))?;
        for file in parsed.files {
            let url = page.join(&file.url)?;
            found.push(Candidate {
                filename: file.filename,
                origin: Origin::Remote(url),
                sha256: file.hashes.get("sha256").map(|h| h.to_ascii_lowercase()),
                upload_time: file.upload_time.as_deref().and_then(parse_rfc3339),
            });
        }
    } else {
        for (href, text) in anchors(&String::from_utf8_lossy(&body)) {
            let mut url = page.join(&href)?;
            let sha256 = url
                .fragment()
                .and_then(|f| f.strip_prefix("sha256="))
                .map(str::to_ascii_lowercase);
            url.set_fragment(None);
            found.push(Candidate {
                filename: text,
                origin: Origin::Remote(url),
                sha256,
                // PEP 503 pages carry no upload time.
                upload_time: None,
            });
        }
    }
    Ok(found)
}

fn parse_rfc3339(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1000) as i64)
}

/// `(href, text)` of every `<a>` of a PEP 503 page, entities decoded.
fn anchors(html: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<a").map(|i| at + i) {
        let Some(tag_end) = lower[start..].find('>').map(|i| start + i) else {
            break;
        };
        let Some(close) = lower[tag_end..].find("</a>").map(|i| tag_end + i) else {
            break;
        };
        let tag = &html[start..tag_end];
        if let Some(href) = attribute(tag, "href") {
            let text = unescape(html[tag_end + 1..close].trim());
            found.push((unescape(&href), text));
        }
        at = close + 4;
    }
    found
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name).map(|i| from + i) {
        let before_ok = i > 0 && lower.as_bytes()[i - 1].is_ascii_whitespace();
        let rest = lower[i + name.len()..].trim_start();
        if before_ok && rest.starts_with('=') {
            let offset = tag.len() - rest.len() + 1;
            let value = tag[offset..].trim_start();
            let quote = value.chars().next()?;
            return if quote == '"' || quote == '\'' {
                value[1..].split(quote).next().map(str::to_owned)
            } else {
                value.split([' ', '>']).next().map(str::to_owned)
            };
        }
        from = i + name.len();
    }
    None
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// devpi's answers are `{"type": …, "result": …}`.
#[derive(Deserialize)]
struct Devpi<T> {
    result: T,
}

#[derive(Deserialize)]
struct DevpiIndex {
    #[serde(default)]
    projects: Vec<String>,
}

#[derive(Deserialize)]
struct DevpiVersion {
    #[serde(rename = "+links", default)]
    links: Vec<DevpiLink>,
}

#[derive(Deserialize)]
struct DevpiLink {
    rel: String,
    href: String,
    hash_spec: Option<String>,
    #[serde(default)]
    log: Vec<DevpiLog>,
}

#[derive(Deserialize)]
struct DevpiLog {
    what: String,
    /// `[year, month, day, hour, minute, second]`, UTC.
    #[serde(default)]
    when: Vec<i64>,
}

const DEVPI_ACCEPT: &str = "application/json";

/// The release files of a devpi index (`URL/USER/INDEX`): its own projects, not those it
/// inherits from its bases (import those from their own index).
pub async fn devpi(client: &reqwest::Client, index: &Url) -> anyhow::Result<Vec<Candidate>> {
    let mut base = index.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let (_, body) = get(client, index, DEVPI_ACCEPT).await?;
    let parsed: Devpi<DevpiIndex> = serde_json::from_slice(&body).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a devpi index (URL/USER/INDEX): {e}",
            redact(index)
        )
    })?;
    let mut found = Vec::new();
    for project in parsed.result.projects {
        let url = base.join(&project)?;
        let (_, body) = get(client, &url, DEVPI_ACCEPT).await?;
        let versions: Devpi<std::collections::BTreeMap<String, DevpiVersion>> =
            serde_json::from_slice(&body)
                .map_err(|e| anyhow::anyhow!("{} is not a devpi project: {e}", redact(&url)))?;
        for version in versions.result.into_values() {
            for link in version.links.into_iter().filter(|l| l.rel == "releasefile") {
                let url = url.join(&link.href)?;
                let filename = url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .map(|s| {
                        percent_encoding::percent_decode_str(s)
                            .decode_utf8_lossy()
                            .into_owned()
                    })
                    .unwrap_or_default();
                let sha256 = link
                    .hash_spec
                    .as_deref()
                    .and_then(|h| h.strip_prefix("sha256="))
                    .map(str::to_ascii_lowercase);
                let upload_time = link
                    .log
                    .iter()
                    .find(|l| l.what == "upload")
                    .and_then(|l| devpi_time(&l.when));
                found.push(Candidate {
                    filename,
                    origin: Origin::Remote(url),
                    sha256,
                    upload_time,
                });
            }
        }
    }
    Ok(found)
}

fn devpi_time(when: &[i64]) -> Option<i64> {
    let [year, month, day, hour, minute, second] = *when else {
        return None;
    };
    let date = time::Date::from_calendar_date(
        i32::try_from(year).ok()?,
        time::Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
    )
    .ok()?;
    Some(date.with_time(clock).assume_utc().unix_timestamp() * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pep_503_anchors() {
        let html = r#"<html><body><a href="../../files/a/demo-1.0.tar.gz#sha256=ABC" data-requires-python="&gt;=3.8">demo-1.0.tar.gz</a>
<A HREF='x.whl'>x.whl</A></body></html>"#;
        assert_eq!(
            anchors(html),
            vec![
                (
                    "../../files/a/demo-1.0.tar.gz#sha256=ABC".to_owned(),
                    "demo-1.0.tar.gz".to_owned()
                ),
                ("x.whl".to_owned(), "x.whl".to_owned()),
            ]
        );
    }

    #[test]
    fn reads_devpi_times() {
        assert_eq!(
            devpi_time(&[2024, 1, 17, 16, 53, 12]),
            Some(1_705_510_392_000_000)
        );
        assert_eq!(devpi_time(&[2024, 13, 1, 0, 0, 0]), None);
    }
}
