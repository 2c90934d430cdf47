//! Where an import's files come from, and what each source says about them: a directory
//! tree, a PEP 691 (JSON) or PEP 503 (HTML) Simple index, or a devpi index's JSON API.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;
use wharf_packaging::index_page::{self, PageFormat};

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

/// The format of a Simple page: what its Content-Type names, or for a server that names
/// neither PEP 691 type nor HTML, JSON when the type says so and HTML otherwise.
fn page_format(content_type: &str) -> PageFormat {
    index_page::format_of(content_type).unwrap_or(if content_type.contains("json") {
        PageFormat::Json
    } else {
        PageFormat::Html
    })
}

/// The project pages of a Simple index root (`…/simple/`).
pub async fn simple_projects(client: &reqwest::Client, root: &Url) -> anyhow::Result<Vec<Url>> {
    let (content_type, body) = get(client, root, SIMPLE_ACCEPT).await?;
    let names = index_page::parse_root(page_format(&content_type), &body)
        .map_err(|e| anyhow::anyhow!("{} is not a Simple index: {e}", redact(root)))?;
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
    let parsed = index_page::parse_project(page_format(&content_type), &body)
        .map_err(|e| anyhow::anyhow!("{} is not a Simple project page: {e}", redact(page)))?;
    parsed
        .files
        .into_iter()
        .map(|file| {
            let url = page
                .join(&file.url)
                .map_err(|e| anyhow::anyhow!("bad URL for '{}': {e}", file.filename))?;
            Ok(Candidate {
                filename: file.filename,
                origin: Origin::Remote(url),
                sha256: file.sha256,
                // PEP 700's; PEP 503 pages carry none.
                upload_time: file.upload_time_micros,
            })
        })
        .collect()
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

    /// A Simple index in both formats (and one that names no type), as a server answers it;
    /// the pages' own reading is tested in wharf_packaging::index_page.
    #[tokio::test]
    async fn reads_simple_indexes_in_both_formats() {
        use axum::http::header::CONTENT_TYPE;
        use axum::routing::get;
        let sha256 = "ab".repeat(32);
        let json_root = r#"{"meta": {"api-version": "1.0"}, "projects": [{"name": "Demo_Pkg"}]}"#;
        let json_page = format!(
            r#"{{"meta": {{"api-version": "1.1"}}, "files": [{{"filename": "demo_pkg-1.0.tar.gz", "url": "../../files/demo_pkg-1.0.tar.gz#x", "hashes": {{"sha256": "{}"}}, "upload-time": "2024-01-17T16:53:12.345678Z"}}]}}"#,
            sha256.to_ascii_uppercase()
        );
        let html_root = "<html><body><a href=\"demo-pkg/\">Demo_Pkg</a>\
             <script>'<a href=\"x/\">x</a>'</script></body></html>";
        let html_page = format!(
            "<a href=\"https://files.example/demo_pkg-1.0.tar.gz#sha256={sha256}\">demo_pkg-1.0.tar.gz</a>"
        );
        let v2 = r#"{"meta": {"api-version": "2.0"}, "projects": {}}"#;
        let typed = |content_type: &'static str, body: String| {
            get(move || async move { ([(CONTENT_TYPE, content_type)], body) })
        };
        let router = axum::Router::new()
            .route(
                "/json/simple/",
                typed("application/vnd.pypi.simple.v1+json", json_root.into()),
            )
            .route(
                "/json/simple/demo-pkg/",
                typed("application/vnd.pypi.simple.v1+json", json_page),
            )
            .route("/html/simple/", typed("text/html", html_root.into()))
            // No type of its own (application/octet-stream): read as HTML, as before.
            .route(
                "/html/simple/demo-pkg/",
                get(move || async move { html_page.into_bytes() }),
            )
            .route("/v2/simple/", typed("application/json", v2.into()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        let client = reqwest::Client::new();
        let url = |path: &str| Url::parse(&format!("{base}{path}")).expect("url");
        let described = |found: Vec<Candidate>| -> Vec<_> {
            found
                .into_iter()
                .map(|c| (c.filename, c.origin.describe(), c.sha256, c.upload_time))
                .collect()
        };

        let pages = simple_projects(&client, &url("/json/simple/"))
            .await
            .expect("json root");
        assert_eq!(pages, [url("/json/simple/demo-pkg/")]);
        let files = simple_files(&client, &pages[0]).await.expect("json page");
        assert_eq!(
            described(files),
            [(
                "demo_pkg-1.0.tar.gz".to_owned(),
                format!("{base}/json/files/demo_pkg-1.0.tar.gz"),
                Some(sha256.clone()),
                Some(1_705_510_392_345_678)
            )]
        );

        let pages = simple_projects(&client, &url("/html/simple/"))
            .await
            .expect("html root");
        assert_eq!(pages, [url("/html/simple/demo-pkg/")]);
        let files = simple_files(&client, &pages[0]).await.expect("html page");
        assert_eq!(
            described(files),
            [(
                "demo_pkg-1.0.tar.gz".to_owned(),
                "https://files.example/demo_pkg-1.0.tar.gz".to_owned(),
                Some(sha256),
                None
            )]
        );

        let refused = simple_projects(&client, &url("/v2/simple/"))
            .await
            .expect_err("api-version 2.0");
        assert_eq!(
            refused.to_string(),
            format!(
                "{base}/v2/simple/ is not a Simple index: the page's api-version 2.0 is not supported (1.x is)"
            )
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
