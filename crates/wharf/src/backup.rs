//! `wharf backup`, `wharf backup --verify` and `wharf restore`: a backup is a directory with
//! the database (a SQLite snapshot by `VACUUM INTO`, or a `pg_dump` custom-format dump), every
//! blob the database refers to, the server key, the audit head file and `manifest.json`
//! (counts, SHA-256 and size of every part, wharf and schema version). It is taken while
//! `serve` runs: the snapshot is one read transaction, and blobs are written before the rows
//! that name them commit, so every blob the snapshot names is in storage — unless its file was
//! deleted (and its blob purged) since; the backup then starts over from a new snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Connection};
use tokio::io::AsyncWriteExt;

use crate::config::Settings;
use crate::db::{Backend, Db};
use crate::storage::Storage;

pub const MANIFEST: &str = "manifest.json";
const SQLITE_PART: &str = "wharf.db";
const POSTGRES_PART: &str = "database.pgdump";
const KEY_PART: &str = "secret.key";
const HEAD_PART: &str = crate::events::chain::HEAD_FILE;
const FILES_DIR: &str = "files";
/// The manifest's own format; a restore refuses one it does not know.
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub wharf_version: String,
    /// The newest migration applied to the database backed up.
    pub schema_version: i64,
    /// `sqlite` or `postgres`: which database part the backup holds.
    pub database: String,
    /// Unix microseconds.
    pub created: i64,
    pub counts: Counts,
    /// `file` (the backup holds `secret.key`) or `settings` (the key is the `secret_key`
    /// setting, which the restored server must be given again).
    pub server_key: String,
    /// Every part, by its path in the backup.
    pub parts: BTreeMap<String, Part>,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub projects: i64,
    pub releases: i64,
    pub files: i64,
    pub users: i64,
    pub events: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Part {
    pub sha256: String,
    pub size: u64,
}

/// A stored file the database names, and the digest its blob must have.
struct Blob {
    path: String,
    sha256: String,
}

/// Writes a backup to `output` (which must not exist, or be an empty directory). It is built
/// in `<output>.partial` and renamed when complete, so a backup that was interrupted never
/// looks like one.
pub async fn create(settings: &Settings, output: &Path) -> anyhow::Result<Manifest> {
    if output.exists() && !dir_is_empty(output)? {
        anyhow::bail!("{} already exists and is not empty", output.display());
    }
    let staging = staging_path(output);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", staging.display()))?;
    }
    let mut attempt = 1;
    let manifest = loop {
        std::fs::create_dir_all(&staging)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", staging.display()))?;
        let result = write_parts(settings, &staging).await;
        match result {
            Ok(manifest) => break manifest,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                if e.downcast_ref::<DeletedMeanwhile>().is_none() || attempt == ATTEMPTS {
                    return Err(e);
                }
                tracing::info!("{e}: taking a new snapshot");
                attempt += 1;
            }
        }
    };
    if output.exists() {
        std::fs::remove_dir(output)?;
    }
    std::fs::rename(&staging, output)
        .map_err(|e| anyhow::anyhow!("cannot move the backup to {}: {e}", output.display()))?;
    Ok(manifest)
}

/// Snapshots taken before giving up when files keep being deleted under the backup.
const ATTEMPTS: usize = 3;

/// A blob the snapshot names was purged because its file was deleted after the snapshot.
#[derive(Debug, thiserror::Error)]
#[error("the file of blob {0} was deleted during the backup")]
struct DeletedMeanwhile(String);

fn staging_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    output.with_file_name(name)
}

fn dir_is_empty(path: &Path) -> anyhow::Result<bool> {
    if !path.is_dir() {
        return Ok(false);
    }
    Ok(std::fs::read_dir(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
        .next()
        .is_none())
}

async fn write_parts(settings: &Settings, staging: &Path) -> anyhow::Result<Manifest> {
    let mut parts = BTreeMap::new();
    // The head file first: the snapshot taken after it holds every event it names (a head
    // newer than the snapshot would make the restored chain look truncated).
    let head = crate::events::chain::head_file(&settings.data_dir);
    if head.exists() {
        let target = staging.join(HEAD_PART);
        std::fs::copy(&head, &target)
            .map_err(|e| anyhow::anyhow!("cannot copy {}: {e}", head.display()))?;
        parts.insert(HEAD_PART.to_owned(), part_of(&target)?);
    }
    let db = Db::connect(&settings.database_url()).await?;
    let result = database_parts(settings, &db, staging, &mut parts).await;
    db.close().await;
    let (database, counts, schema_version, blobs) = result?;

    let storage = Storage::open(&settings.storage_url())?;
    for blob in &blobs {
        let relative = format!("{FILES_DIR}/{}", blob.path);
        let Some(part) = copy_blob(&storage, &blob.path, &staging.join(&relative)).await? else {
            let file = blob.path.strip_suffix(".metadata").unwrap_or(&blob.path);
            let db = Db::connect(&settings.database_url()).await?;
            let live: Result<Option<(String,)>, _> =
                sqlx::query_as("SELECT path FROM files WHERE path = $1")
                    .bind(file)
                    .fetch_optional(db.pool())
                    .await;
            db.close().await;
            if live?.is_none() {
                return Err(DeletedMeanwhile(blob.path.clone()).into());
            }
            anyhow::bail!(
                "the database names the blob {}, which is not in storage",
                blob.path
            );
        };
        if part.sha256 != blob.sha256 {
            anyhow::bail!(
                "the stored blob {} does not have the digest the database records for it (storage damaged?)",
                blob.path
            );
        }
        parts.insert(relative, part);
    }

    let server_key = if settings.secret_key.is_some() {
        "settings"
    } else {
        let key = settings.data_dir.join(KEY_PART);
        let target = staging.join(KEY_PART);
        std::fs::copy(&key, &target)
            .map_err(|e| anyhow::anyhow!("cannot copy the server key {}: {e}", key.display()))?;
        parts.insert(KEY_PART.to_owned(), part_of(&target)?);
        "file"
    };
    let manifest = Manifest {
        format: FORMAT,
        wharf_version: crate::VERSION.to_owned(),
        schema_version,
        database: database.to_owned(),
        created: crate::clock::Clock::default().now_micros(),
        counts,
        server_key: server_key.to_owned(),
        parts,
    };
    std::fs::write(
        staging.join(MANIFEST),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(manifest)
}

type DatabaseParts = (&'static str, Counts, i64, Vec<Blob>);

async fn database_parts(
    settings: &Settings,
    db: &Db,
    staging: &Path,
    parts: &mut BTreeMap<String, Part>,
) -> anyhow::Result<DatabaseParts> {
    match db.backend() {
        Backend::Sqlite => {
            let target = staging.join(SQLITE_PART);
            // One read transaction: consistent, WAL included, writers not blocked.
            sqlx::query("VACUUM INTO $1")
                .bind(target.display().to_string())
                .execute(db.pool())
                .await
                .map_err(|e| anyhow::anyhow!("cannot snapshot the database: {e}"))?;
            // A file on its own, without -wal or -shm beside it.
            let url = format!("sqlite:{}", target.display());
            let mut conn = AnyConnection::connect(&url).await?;
            sqlx::query("PRAGMA journal_mode = DELETE")
                .execute(&mut conn)
                .await?;
            let counts = counts(&mut conn).await?;
            let schema = schema_version(&mut conn).await?;
            let blobs = blobs(&mut conn).await?;
            conn.close().await?;
            parts.insert(SQLITE_PART.to_owned(), part_of(&target)?);
            Ok(("sqlite", counts, schema, blobs))
        }
        Backend::Postgres => {
            let target = staging.join(POSTGRES_PART);
            // One snapshot for the dump, the counts and the blob list: this transaction
            // exports it and stays open while pg_dump reads from it, so the manifest says
            // exactly what the dump holds, uploads going on or not.
            let mut tx = db.pool().begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
            let (snapshot,): (String,) = sqlx::query_as("SELECT pg_export_snapshot()")
                .fetch_one(&mut *tx)
                .await?;
            let counts = counts(&mut tx).await?;
            let schema = schema_version(&mut tx).await?;
            let blobs = blobs(&mut tx).await?;
            pg_dump(&settings.database_url(), &target, &snapshot).await?;
            tx.commit().await?;
            parts.insert(POSTGRES_PART.to_owned(), part_of(&target)?);
            Ok(("postgres", counts, schema, blobs))
        }
    }
}

async fn pg_dump(url: &str, target: &Path, snapshot: &str) -> anyhow::Result<()> {
    let output = tokio::process::Command::new("pg_dump")
        .arg("--format=custom")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--no-owner")
        .arg("--file")
        .arg(target)
        .arg("--dbname")
        .arg(url)
        .output()
        .await;
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "pg_dump is not on the PATH: install the PostgreSQL client tools (same major version as the server), or back up the database with pg_dump yourself (README, Operating wharf)"
        ),
        Err(e) => anyhow::bail!("cannot run pg_dump: {e}"),
        Ok(output) if !output.status.success() => anyhow::bail!(
            "pg_dump failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Ok(_) => Ok(()),
    }
}

/// The snapshot, read-only and immutable: reading it changes no byte and adds no file.
async fn open_snapshot(path: &Path) -> anyhow::Result<AnyConnection> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite:{}?mode=ro&immutable=true", path.display());
    AnyConnection::connect(&url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))
}

async fn counts(conn: &mut AnyConnection) -> anyhow::Result<Counts> {
    let (projects, releases, files, users, events) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM projects), (SELECT COUNT(*) FROM releases), \
         (SELECT COUNT(*) FROM files), (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM events)",
    )
    .fetch_one(conn)
    .await?;
    Ok(Counts {
        projects,
        releases,
        files,
        users,
        events,
    })
}

async fn schema_version(conn: &mut AnyConnection) -> anyhow::Result<i64> {
    let (version,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(conn)
            .await?;
    Ok(version.unwrap_or(0))
}

async fn blobs(conn: &mut AnyConnection) -> anyhow::Result<Vec<Blob>> {
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT path, sha256_digest, metadata_sha256 FROM files ORDER BY path")
            .fetch_all(conn)
            .await?;
    let mut blobs = Vec::with_capacity(rows.len());
    for (path, sha256, metadata_sha256) in rows {
        if let Some(metadata_sha256) = metadata_sha256 {
            blobs.push(Blob {
                path: format!("{path}.metadata"),
                sha256: metadata_sha256,
            });
        }
        blobs.push(Blob { path, sha256 });
    }
    Ok(blobs)
}

/// Copies the blob to `target`; `None` when storage does not have it.
async fn copy_blob(storage: &Storage, key: &str, target: &Path) -> anyhow::Result<Option<Part>> {
    let Some(stored) = storage.get(key).await? else {
        return Ok(None);
    };
    let mut stream = stored.stream;
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut file = tokio::fs::File::create(target)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", target.display()))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.sync_all().await?;
    Ok(Some(Part {
        sha256: hex::encode(hasher.finalize()),
        size,
    }))
}

fn part_of(path: &Path) -> anyhow::Result<Part> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok(Part {
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

/// What `verify` found.
pub struct Verified {
    pub manifest: Manifest,
    /// Every problem found, one line each; empty when the backup is intact.
    pub problems: Vec<String>,
}

/// Re-reads every part of the backup at `path` against its manifest, and (SQLite) checks that
/// the snapshot's files and counts are the manifest's.
pub async fn verify(path: &Path) -> anyhow::Result<Verified> {
    let manifest_path = path.join(MANIFEST);
    let text = std::fs::read(&manifest_path).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a wharf backup: cannot read {}: {e}",
            path.display(),
            manifest_path.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a valid manifest: {e}", manifest_path.display()))?;
    if manifest.format != FORMAT {
        anyhow::bail!(
            "the backup's format {} is not one this wharf reads ({FORMAT})",
            manifest.format
        );
    }
    let mut problems = Vec::new();
    for (name, expected) in &manifest.parts {
        if name.split('/').any(|c| c == ".." || c.is_empty()) {
            problems.push(format!("{name}: not a path inside the backup"));
            continue;
        }
        match part_of(&path.join(name)) {
            Err(_) => problems.push(format!("{name}: missing")),
            Ok(found) if found != *expected => problems.push(format!(
                "{name}: SHA-256 {} ({} bytes), the manifest says {} ({} bytes)",
                found.sha256, found.size, expected.sha256, expected.size
            )),
            Ok(_) => {}
        }
    }
    for extra in files_under(path)? {
        if extra != MANIFEST && !manifest.parts.contains_key(&extra) {
            problems.push(format!("{extra}: not in the manifest"));
        }
    }
    let db_part = match manifest.database.as_str() {
        "sqlite" => SQLITE_PART,
        "postgres" => POSTGRES_PART,
        other => anyhow::bail!("the backup's database '{other}' is not sqlite or postgres"),
    };
    if !manifest.parts.contains_key(db_part) {
        problems.push(format!("{db_part}: not in the manifest"));
    }
    if manifest.server_key == "file" && !manifest.parts.contains_key(KEY_PART) {
        problems.push(format!("{KEY_PART}: not in the manifest"));
    }
    if manifest.database == "sqlite" && problems.is_empty() {
        let mut conn = open_snapshot(&path.join(SQLITE_PART)).await?;
        let found = counts(&mut conn).await?;
        if found != manifest.counts {
            problems.push(format!(
                "{SQLITE_PART}: counts {found:?}, the manifest says {:?}",
                manifest.counts
            ));
        }
        for blob in blobs(&mut conn).await? {
            let name = format!("{FILES_DIR}/{}", blob.path);
            match manifest.parts.get(&name) {
                None => problems.push(format!("{name}: named by the database, not backed up")),
                Some(part) if part.sha256 != blob.sha256 => problems.push(format!(
                    "{name}: SHA-256 {}, the database records {}",
                    part.sha256, blob.sha256
                )),
                Some(_) => {}
            }
        }
        conn.close().await?;
    }
    Ok(Verified { manifest, problems })
}

/// Every regular file under `root`, as a `/`-separated path relative to it.
fn files_under(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(root) {
                let parts: Vec<_> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                found.push(parts.join("/"));
            }
        }
    }
    Ok(found)
}

/// What a restore did.
pub struct Restored {
    pub counts: Counts,
    pub blobs: usize,
    pub events_checked: u64,
}

/// Restores the backup at `path` into the data directory, database and storage of
/// `settings`, after checking it whole. Refuses a target that holds anything unless `force`.
pub async fn restore(settings: Settings, path: &Path, force: bool) -> anyhow::Result<Restored> {
    let verified = verify(path).await?;
    if let Some(problem) = verified.problems.first() {
        anyhow::bail!(
            "the backup is damaged ({} problems; first: {problem}): nothing restored",
            verified.problems.len()
        );
    }
    let manifest = verified.manifest;
    if manifest.server_key == "settings" && settings.secret_key.is_none() {
        anyhow::bail!(
            "the backed-up server took its key from the secret_key setting: give the restored one the same secret_key"
        );
    }
    let data_dir = settings.data_dir.clone();
    let target_db = settings.database_url();
    let sqlite_file = sqlite_path(&target_db);
    match (manifest.database.as_str(), &sqlite_file) {
        ("sqlite", None) => anyhow::bail!(
            "the backup holds a SQLite database and database_url is not SQLite: restore into SQLite, then move the data"
        ),
        ("postgres", Some(_)) => anyhow::bail!(
            "the backup holds a PostgreSQL dump: set database_url to the (empty) PostgreSQL database to restore into"
        ),
        _ => {}
    }
    if !force && data_dir.exists() && !dir_is_empty(&data_dir)? {
        anyhow::bail!(
            "{} is not empty: restore into an empty directory, or give --force to replace what is there",
            data_dir.display()
        );
    }
    let storage = Storage::open(&settings.storage_url())?;
    if !force && !storage.list().await?.is_empty() {
        anyhow::bail!(
            "the storage {} is not empty: give --force to restore into it anyway",
            settings.storage_url()
        );
    }
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", data_dir.display()))?;

    match &sqlite_file {
        Some(file) => {
            for suffix in ["", "-wal", "-shm"] {
                let mut name = file.as_os_str().to_owned();
                name.push(suffix);
                match std::fs::remove_file(PathBuf::from(name)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => anyhow::bail!("cannot replace {}: {e}", file.display()),
                }
            }
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(path.join(SQLITE_PART), file)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
        }
        None => pg_restore(&target_db, &path.join(POSTGRES_PART), force).await?,
    }
    if manifest.parts.contains_key(KEY_PART) {
        let target = data_dir.join(KEY_PART);
        std::fs::copy(path.join(KEY_PART), &target)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", target.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    if manifest.parts.contains_key(HEAD_PART) {
        std::fs::copy(
            path.join(HEAD_PART),
            crate::events::chain::head_file(&data_dir),
        )?;
    }
    let mut blobs = 0;
    for name in manifest.parts.keys() {
        if let Some(key) = name.strip_prefix(&format!("{FILES_DIR}/")) {
            storage.put_file(key, &path.join(name)).await?;
            blobs += 1;
        }
    }

    // The restored index, as `serve` would open it: the chain must verify and every file
    // must be in storage.
    let state = crate::app::AppState::open(settings).await?;
    let checked = check_restored(&state).await;
    state.db.close().await;
    let events_checked = checked?;
    Ok(Restored {
        counts: manifest.counts,
        blobs,
        events_checked,
    })
}

async fn check_restored(state: &crate::app::AppState) -> anyhow::Result<u64> {
    use crate::events::chain;
    chain::seal(&state.db, &state.keys).await?;
    let report = chain::verify(&state.db, &state.keys, &state.settings.data_dir, None).await?;
    if let Some(problem) = report.problem {
        anyhow::bail!("the restored audit log does not verify: {problem}");
    }
    let mut conn = state.db.pool().acquire().await?;
    for blob in blobs(&mut conn).await? {
        if state.storage.get(&blob.path).await?.is_none() {
            anyhow::bail!("the restored file {} is not in storage", blob.path);
        }
    }
    Ok(report.checked)
}

/// The file of a `sqlite:` URL (`sqlite:PATH`, `sqlite://PATH`, with `?options`).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let file = rest.split('?').next().unwrap_or_default();
    Some(PathBuf::from(file))
}

async fn pg_restore(url: &str, dump: &Path, force: bool) -> anyhow::Result<()> {
    let db = Db::connect(url).await?;
    let existing: Result<(i64,), _> = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(db.pool())
        .await;
    db.close().await;
    if existing.is_ok() && !force {
        anyhow::bail!(
            "the PostgreSQL database already holds a wharf schema: restore into an empty database, or give --force"
        );
    }
    let mut command = tokio::process::Command::new("pg_restore");
    command.arg("--no-owner").arg("--dbname").arg(url);
    if force {
        command.arg("--clean").arg("--if-exists");
    }
    let output = command.arg(dump).output().await;
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "pg_restore is not on the PATH: install the PostgreSQL client tools, or run pg_restore --no-owner --dbname URL {} yourself",
            dump.display()
        ),
        Err(e) => anyhow::bail!("cannot run pg_restore: {e}"),
        Ok(output) if !output.status.success() => anyhow::bail!(
            "pg_restore failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Ok(_) => Ok(()),
    }
}

/// `wharf backup --output PATH`: one summary line on standard output.
pub async fn run_create(settings: &Settings, output: &Path) -> anyhow::Result<()> {
    let manifest = create(settings, output).await?;
    let c = &manifest.counts;
    println!(
        "backed up {} projects, {} files, {} users, {} events ({} parts, schema {}) to {}",
        c.projects,
        c.files,
        c.users,
        c.events,
        manifest.parts.len(),
        manifest.schema_version,
        output.display()
    );
    if manifest.server_key == "settings" {
        println!(
            "the server key is the secret_key setting: keep it with the backup, a restore needs it"
        );
    }
    Ok(())
}

/// `wharf backup --verify PATH`: every problem on its own line, then exit 1 if any.
pub async fn run_verify(path: &Path) -> anyhow::Result<()> {
    let verified = verify(path).await?;
    for problem in &verified.problems {
        println!("{problem}");
    }
    if !verified.problems.is_empty() {
        anyhow::bail!(
            "the backup at {} is damaged: {} problems",
            path.display(),
            verified.problems.len()
        );
    }
    println!(
        "the backup at {} is intact: {} parts checked",
        path.display(),
        verified.manifest.parts.len()
    );
    Ok(())
}

/// `wharf restore PATH`.
pub async fn run_restore(settings: Settings, path: &Path, force: bool) -> anyhow::Result<()> {
    let data_dir = settings.data_dir.clone();
    let restored = restore(settings, path, force).await?;
    let c = &restored.counts;
    println!(
        "restored {} projects, {} files ({} blobs), {} users, {} events into {}; the audit log is intact ({} events checked)",
        c.projects,
        c.files,
        restored.blobs,
        c.users,
        c.events,
        data_dir.display(),
        restored.events_checked
    );
    Ok(())
}
