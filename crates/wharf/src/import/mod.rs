//! `wharf import`: brings the files of another index in, each one as an upload by `--owner`.
//!
//! Every file goes through the upload endpoint itself (`POST /legacy/`, called in-process
//! with a short-lived token of the owner's), so it meets exactly the checks, storage and
//! transaction of an upload: a file is refused whole or stored whole. What the upload path
//! cannot take from a form — the source's upload time and an `file:import` event — is written
//! right after, in one transaction of its own.

pub mod source;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, header};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use url::Url;

use crate::app::AppState;
use crate::config::Settings;
use crate::events::RequestMeta;
use crate::packaging::{self, import::ImportMark};
use crate::tokens::{self, TokenScope};
pub use source::{Candidate, Origin};

/// Where the files come from.
#[derive(Debug, Clone)]
pub enum Source {
    Directory(PathBuf),
    Simple(Url),
    Devpi(Url),
}

impl Source {
    pub fn from_args(
        dir: Option<PathBuf>,
        simple: Option<String>,
        devpi: Option<String>,
    ) -> anyhow::Result<Source> {
        let url = |text: String, flag: &str| {
            Url::parse(&text).map_err(|e| anyhow::anyhow!("invalid {flag} '{text}': {e}"))
        };
        match (dir, simple, devpi) {
            (Some(dir), None, None) => Ok(Source::Directory(dir)),
            (None, Some(simple), None) => {
                let mut url = url(simple, "--from-simple")?;
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                Ok(Source::Simple(url))
            }
            (None, None, Some(devpi)) => Ok(Source::Devpi(url(devpi, "--from-devpi")?)),
            _ => anyhow::bail!("give one of DIR, --from-simple URL or --from-devpi URL"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Directory(dir) => dir.display().to_string(),
            Source::Simple(url) | Source::Devpi(url) => source::redact(url),
        }
    }
}

/// A file the import did not take, and why (the upload path's own message when it refused).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub filename: String,
    pub origin: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub imported: Vec<String>,
    /// Already in the index with the same content.
    pub skipped: Vec<String>,
    pub refused: Vec<Refusal>,
    pub bytes: u64,
}

enum Outcome {
    Imported(u64),
    Skipped,
}

/// Counters the progress display reads.
#[derive(Default)]
struct Progress {
    done: AtomicU64,
    bytes: AtomicU64,
}

/// The whole import, with the progress display and the final list: exit status 1 when any
/// file was refused.
pub async fn run(
    settings: Settings,
    source: Source,
    owner: &str,
    jobs: usize,
) -> anyhow::Result<()> {
    let state = AppState::open(settings).await?;
    let started = Instant::now();
    let result = import(&state, &source, owner, jobs, true).await;
    state.db.close().await;
    let report = result?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "imported {} files ({:.1} MB) from {} in {elapsed:.1} s; {} already present, {} refused",
        report.imported.len(),
        report.bytes as f64 / 1e6,
        source.describe(),
        report.skipped.len(),
        report.refused.len()
    );
    for refusal in &report.refused {
        println!(
            "refused {} ({}): {}",
            refusal.filename, refusal.origin, refusal.reason
        );
    }
    if !report.refused.is_empty() {
        anyhow::bail!("{} files were refused (listed above)", report.refused.len());
    }
    Ok(())
}

/// Imports every file of `source` as uploads by `owner`, `jobs` at a time.
pub async fn import(
    state: &AppState,
    source: &Source,
    owner: &str,
    jobs: usize,
    show_progress: bool,
) -> anyhow::Result<Report> {
    let user = crate::accounts::find_by_username(&state.db, owner)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user named '{owner}' (--owner)"))?;
    let client = reqwest::Client::builder()
        .user_agent(user_agent())
        .build()?;
    let mut candidates = list(&client, source, jobs).await?;
    // Oldest first, so releases and their files come in the order they first did.
    candidates.sort_by_key(|c| c.upload_time.unwrap_or(i64::MAX));

    let meta = RequestMeta {
        ip_address: None,
        user_agent: Some(user_agent()),
    };
    let description = format!(
        "wharf import {}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let token = tokens::create(
        &tokens::Issuer::of(state, &state.settings.token_location()),
        &user,
        &description,
        &TokenScope {
            projects: &[],
            expires_in: Some(7 * 24 * 3600),
            read_only: false,
        },
        &meta,
        state.clock.now_micros(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot create the import's token: {e}"))?;

    let progress = Arc::new(Progress::default());
    let total = candidates.len() as u64;
    let display = Display::start(total, progress.clone(), show_progress);
    let importer = Arc::new(Importer {
        state: state.clone(),
        router: crate::app::router(state.clone()),
        client: client.clone(),
        token: token.clone(),
        owner: user.username.clone(),
        source: source.describe(),
    });
    // Each file is a task of its own, so that `jobs` files are checked on as many cores (in
    // one task, their hashing and archive reading would share a single thread).
    let outcomes: Vec<(Candidate, anyhow::Result<Outcome>)> =
        futures_util::stream::iter(candidates)
            .map(|candidate| {
                let importer = importer.clone();
                let progress = progress.clone();
                async move {
                    let listed = candidate.clone();
                    let outcome = tokio::spawn(async move { importer.one(&candidate).await })
                        .await
                        .unwrap_or_else(|e| {
                            Err(anyhow::anyhow!("the import of this file failed: {e}"))
                        });
                    let candidate = listed;
                    if let Ok(Outcome::Imported(bytes)) = &outcome {
                        progress.bytes.fetch_add(*bytes, Ordering::Relaxed);
                    }
                    progress.done.fetch_add(1, Ordering::Relaxed);
                    (candidate, outcome)
                }
            })
            .buffer_unordered(jobs.max(1))
            .collect()
            .await;
    display.finish();

    // The token served this import only.
    if let Ok(Some(info)) = find_token(state, &user.id, &description).await {
        let _ = tokens::delete(
            state,
            &info,
            tokens::Removal::ByOwner,
            &meta,
            state.clock.now_micros(),
        )
        .await;
    }

    let mut report = Report::default();
    for (candidate, outcome) in outcomes {
        match outcome {
            Ok(Outcome::Imported(bytes)) => {
                report.bytes += bytes;
                report.imported.push(candidate.filename);
            }
            Ok(Outcome::Skipped) => report.skipped.push(candidate.filename),
            Err(e) => report.refused.push(Refusal {
                filename: candidate.filename.clone(),
                origin: candidate.origin.describe(),
                reason: format!("{e:#}").replace('\n', " "),
            }),
        }
    }
    report.refused.sort_by(|a, b| a.filename.cmp(&b.filename));
    Ok(report)
}

fn user_agent() -> String {
    format!("wharf-import/{}", env!("CARGO_PKG_VERSION"))
}

async fn find_token(
    state: &AppState,
    user_id: &str,
    description: &str,
) -> anyhow::Result<Option<tokens::TokenInfo>> {
    Ok(tokens::list_for_user(&state.db, user_id)
        .await?
        .into_iter()
        .find(|t| t.description == description))
}

async fn list(
    client: &reqwest::Client,
    source: &Source,
    jobs: usize,
) -> anyhow::Result<Vec<Candidate>> {
    match source {
        Source::Directory(dir) => source::directory(dir),
        Source::Devpi(url) => source::devpi(client, url).await,
        Source::Simple(root) => {
            let pages = source::simple_projects(client, root).await?;
            let lists: Vec<anyhow::Result<Vec<Candidate>>> = futures_util::stream::iter(pages)
                .map(|page| async move { source::simple_files(client, &page).await })
                .buffered(jobs.max(1) * 2)
                .collect()
                .await;
            let mut all = Vec::new();
            for list in lists {
                all.extend(list?);
            }
            Ok(all)
        }
    }
}

struct Importer {
    state: AppState,
    /// The app's own router: uploads take the very path of `POST /legacy/`.
    router: axum::Router,
    client: reqwest::Client,
    token: String,
    owner: String,
    source: String,
}

/// A file fetched to local disk for checking: its path, and the temporary file that holds
/// it when it was downloaded.
struct Fetched {
    path: PathBuf,
    _temporary: Option<tempfile::NamedTempFile>,
    bytes: Vec<u8>,
    sha256: String,
}

impl Importer {
    async fn one(&self, candidate: &Candidate) -> anyhow::Result<Outcome> {
        let filename = &candidate.filename;
        // Already here with the same content: the source said so, no need to fetch it.
        let present = packaging::import::sha256_of_filename(&self.state.db, filename).await?;
        if let (Some(present), Some(source)) = (&present, &candidate.sha256)
            && present == source
        {
            return Ok(Outcome::Skipped);
        }
        let package_type = package_type(filename)?;
        let fetched = self.fetch(candidate).await?;
        if present.as_deref() == Some(fetched.sha256.as_str()) {
            return Ok(Outcome::Skipped);
        }
        let fields = form::fields(&fetched.path, filename, package_type, &fetched.sha256).await?;
        let size = fetched.bytes.len() as u64;
        let mark = ImportMark {
            upload_time_micros: candidate.upload_time,
            details: serde_json::json!({
                "imported_by": self.owner,
                "source": self.source,
                "origin": candidate.origin.describe(),
                "original_upload_time": candidate.upload_time.map(crate::clock::iso8601_micros),
            }),
        };
        self.upload(filename, &fields, fetched.bytes, mark).await?;
        Ok(Outcome::Imported(size))
    }

    async fn fetch(&self, candidate: &Candidate) -> anyhow::Result<Fetched> {
        let (path, temporary, bytes) = match &candidate.origin {
            Origin::Local(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                (path.clone(), None, bytes)
            }
            Origin::Remote(url) => {
                let bytes = self.download(url).await?;
                let tmp_dir = self.state.settings.tmp_dir();
                std::fs::create_dir_all(&tmp_dir)?;
                let mut temporary = tempfile::Builder::new()
                    .prefix("import-")
                    .tempfile_in(&tmp_dir)?;
                std::io::Write::write_all(&mut temporary, &bytes)?;
                (temporary.path().to_owned(), Some(temporary), bytes)
            }
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(expected) = &candidate.sha256
            && *expected != sha256
        {
            anyhow::bail!(
                "the file's SHA-256 is {sha256}, the source says {expected}: damaged in transfer or at the source"
            );
        }
        Ok(Fetched {
            path,
            _temporary: temporary,
            bytes,
            sha256,
        })
    }

    async fn download(&self, url: &Url) -> anyhow::Result<Vec<u8>> {
        let limit = self.state.settings.max_upload_size;
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot download {}: {e}", source::redact(url)))?;
        if !response.status().is_success() {
            anyhow::bail!("{} answered {}", source::redact(url), response.status());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| anyhow::anyhow!("cannot download {}: {e}", source::redact(url)))?
        {
            bytes.extend_from_slice(&chunk);
            // Larger than any project may take: the upload would refuse it anyway.
            if bytes.len() as u64 > limit.max(1 << 30) {
                anyhow::bail!("{} is larger than any upload may be", source::redact(url));
            }
        }
        Ok(bytes)
    }

    /// The upload itself: `POST /legacy/` through the app's router, in-process.
    async fn upload(
        &self,
        filename: &str,
        fields: &[(String, String)],
        content: Vec<u8>,
        mark: ImportMark,
    ) -> anyhow::Result<()> {
        let boundary = format!("wharf-import-{}", uuid::Uuid::new_v4().simple());
        let body = form::multipart(&boundary, fields, filename, content);
        let credentials = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("__token__:{}", self.token),
        );
        let request = Request::post("/legacy/")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header(header::AUTHORIZATION, format!("Basic {credentials}"))
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, user_agent())
            .extension(mark)
            .body(Body::from(body))?;
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| anyhow::anyhow!("upload failed: {e}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
            .unwrap_or_else(|| format!("{status} {}", String::from_utf8_lossy(&body).trim()));
        anyhow::bail!("{message}")
    }
}

fn package_type(filename: &str) -> anyhow::Result<wharf_packaging::filename::PackageType> {
    use wharf_packaging::filename::PackageType;
    let lower = filename.to_ascii_lowercase();
    if lower.ends_with(".whl") {
        Ok(PackageType::BdistWheel)
    } else if lower.ends_with(".tar.gz") || lower.ends_with(".zip") {
        Ok(PackageType::Sdist)
    } else {
        anyhow::bail!(
            "not a wheel (.whl) or sdist (.tar.gz, .zip): the index takes no other kind of file"
        )
    }
}

mod form;

/// A progress bar on a terminal (files, bytes, rate, ETA), else a line every few seconds.
struct Display {
    bar: Option<indicatif::ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Display {
    fn start(total: u64, progress: Arc<Progress>, show: bool) -> Display {
        if !show {
            return Display {
                bar: None,
                ticker: None,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} files, {msg}, {per_sec}, ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let shown = bar.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    shown.set_position(progress.done.load(Ordering::Relaxed));
                    shown.set_message(format!(
                        "{:.1} MB",
                        progress.bytes.load(Ordering::Relaxed) as f64 / 1e6
                    ));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            return Display {
                bar: Some(bar),
                ticker: Some(ticker),
            };
        }
        let started = Instant::now();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let done = progress.done.load(Ordering::Relaxed);
                let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
                eprintln!(
                    "import: {done}/{total} files, {:.1} MB, {rate:.1} files/s",
                    progress.bytes.load(Ordering::Relaxed) as f64 / 1e6
                );
            }
        });
        Display {
            bar: None,
            ticker: Some(ticker),
        }
    }

    fn finish(self) {
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
