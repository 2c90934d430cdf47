//! Projects, releases, files and roles: the database side of the index.

use sqlx::AnyConnection;

use crate::db::Db;

pub mod blobs;
pub mod import;
pub mod permissions;
mod removal;
pub mod roles;
mod settings;
mod upload;

pub use removal::{delete_file, delete_project, delete_project_in, delete_release, set_yanked};
pub use settings::{Switch, set_owners_require_2fa, set_switch, set_upload_limit};
pub use upload::{Publish, Published, create_project, publish};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub normalized_name: String,
    pub last_serial: i64,
    pub upload_limit: Option<i64>,
    pub total_size: i64,
    /// Owners and Maintainers must use two-factor authentication.
    pub owners_require_2fa: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Owner,
    Maintainer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Maintainer => "Maintainer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "Owner" => Some(Role::Owner),
            "Maintainer" => Some(Role::Maintainer),
            _ => None,
        }
    }
}

type ProjectRow = (String, String, String, i64, Option<i64>, i64, i64);

const PROJECT_COLUMNS: &str =
    "id, name, normalized_name, last_serial, upload_limit, total_size, owners_require_2fa";

fn project_from_row(row: ProjectRow) -> Project {
    let (id, name, normalized_name, last_serial, upload_limit, total_size, requires_2fa) = row;
    Project {
        id,
        name,
        normalized_name,
        last_serial,
        upload_limit,
        total_size,
        owners_require_2fa: requires_2fa != 0,
    }
}

pub async fn find_project(db: &Db, normalized_name: &str) -> Result<Option<Project>, sqlx::Error> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE normalized_name = $1");
    let row: Option<ProjectRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(normalized_name)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(project_from_row))
}

/// The name of an existing project that looks confusingly like `name`, if any.
pub async fn confusable_project(db: &Db, name: &str) -> Result<Option<String>, sqlx::Error> {
    let ultra = wharf_packaging::name::ultranormalize(name);
    let row: Option<(String,)> =
        sqlx::query_as("SELECT name FROM projects WHERE ultranormalized_name = $1 LIMIT 1")
            .bind(ultra)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|(name,)| name))
}

/// Why a new project may not take a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameRefusal {
    /// A module of Python's standard library.
    Stdlib,
    /// Served from the upstream index and not claimed for this one.
    Proxied,
    /// Too similar to this existing project's name.
    Confusable(String),
    /// A project of this name exists.
    Taken,
}

/// Whether a new project may be called `display` (normalised `normalized`); `proxying` when
/// the index serves an upstream. Checked again where the project is created (its unique
/// name, `proxy::store::mark_hosted`), as another request may take the name meanwhile.
pub async fn check_new_name(
    db: &Db,
    display: &str,
    normalized: &str,
    proxying: bool,
) -> Result<Result<(), NameRefusal>, sqlx::Error> {
    if wharf_packaging::name::is_stdlib_module(normalized) {
        return Ok(Err(NameRefusal::Stdlib));
    }
    if proxying {
        let mut conn = db.pool().acquire().await?;
        if crate::proxy::store::is_proxied(&mut conn, normalized).await? {
            return Ok(Err(NameRefusal::Proxied));
        }
    }
    if let Some(existing) = confusable_project(db, display).await? {
        // An exact match has the same ultranormalised name: one query for both.
        if find_project(db, normalized).await?.is_some() {
            return Ok(Err(NameRefusal::Taken));
        }
        return Ok(Err(NameRefusal::Confusable(existing)));
    }
    Ok(Ok(()))
}

pub async fn role_of(
    db: &Db,
    project_id: &str,
    user_id: &str,
) -> Result<Option<Role>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT role_name FROM roles WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.and_then(|(r,)| Role::parse(&r)))
}

/// Changes how a project's name is written (not what it normalises to).
pub async fn rename_display(
    conn: &mut AnyConnection,
    project_id: &str,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE projects SET name = $1 WHERE id = $2")
        .bind(name)
        .bind(project_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Inserts a project; `false` when another request created the same name first.
pub async fn insert_project(
    conn: &mut AnyConnection,
    project: &Project,
    now_micros: i64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO projects (id, name, normalized_name, ultranormalized_name, created) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (normalized_name) DO NOTHING",
    )
    .bind(&project.id)
    .bind(&project.name)
    .bind(&project.normalized_name)
    .bind(wharf_packaging::name::ultranormalize(&project.name))
    .bind(now_micros)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn insert_role(
    conn: &mut AnyConnection,
    project_id: &str,
    user_id: &str,
    role: Role,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO roles (project_id, user_id, role_name, created) VALUES ($1, $2, $3, $4)",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(now_micros)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds a journal entry and makes its id the project's serial. Returns the serial.
pub async fn journal(
    conn: &mut AnyConnection,
    project: &Project,
    version: Option<&str>,
    action: &str,
    submitted_by: &str,
    now_micros: i64,
) -> Result<i64, sqlx::Error> {
    let (serial,): (i64,) = sqlx::query_as(
        "INSERT INTO journals (name, version, action, submitted_date, submitted_by) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(&project.name)
    .bind(version)
    .bind(action)
    .bind(now_micros)
    .bind(submitted_by)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("UPDATE projects SET last_serial = $1 WHERE id = $2")
        .bind(serial)
        .bind(&project.id)
        .execute(conn)
        .await?;
    Ok(serial)
}

/// The newest journal id: the index's serial.
pub async fn last_serial(db: &Db) -> Result<i64, sqlx::Error> {
    let (serial,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM journals")
        .fetch_one(db.pool())
        .await?;
    Ok(serial)
}

/// Names of projects changed after `serial` (for other processes' cache invalidation).
pub async fn changed_since(db: &Db, serial: i64) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT name FROM journals WHERE id > $1")
        .bind(serial)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

#[derive(Clone, Debug)]
pub struct Release {
    pub id: String,
    pub version: String,
    pub created: i64,
}

pub async fn find_release(
    db: &Db,
    project_id: &str,
    canonical_version: &str,
) -> Result<Option<Release>, sqlx::Error> {
    let row: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT id, version, created FROM releases WHERE project_id = $1 AND canonical_version = $2",
    )
    .bind(project_id)
    .bind(canonical_version)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(id, version, created)| Release {
        id,
        version,
        created,
    }))
}

pub struct NewRelease<'a> {
    pub id: &'a str,
    pub project_id: &'a str,
    pub version: &'a str,
    pub canonical_version: &'a str,
    pub is_prerelease: bool,
    pub summary: Option<&'a str>,
    pub requires_python: Option<&'a str>,
    /// The release's core metadata as JSON (see `api::metadata_json`).
    pub metadata: &'a str,
    pub uploader_id: Option<&'a str>,
}

pub async fn insert_release(
    conn: &mut AnyConnection,
    release: &NewRelease<'_>,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO releases (id, project_id, version, canonical_version, is_prerelease, created, \
         summary, requires_python, metadata, uploader_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(release.id)
    .bind(release.project_id)
    .bind(release.version)
    .bind(release.canonical_version)
    .bind(i64::from(release.is_prerelease))
    .bind(now_micros)
    .bind(release.summary)
    .bind(release.requires_python)
    .bind(release.metadata)
    .bind(release.uploader_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn release_has_sdist(db: &Db, release_id: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM files WHERE release_id = $1 AND packagetype = 'sdist' LIMIT 1",
    )
    .bind(release_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.is_some())
}

/// An existing file with the same filename or the same content, as (filename, sha256, blake2).
pub async fn find_duplicate_file(
    db: &Db,
    filename: &str,
    blake2_256: &str,
) -> Result<Option<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT filename, sha256_digest, blake2_256_digest FROM files \
         WHERE filename = $1 OR blake2_256_digest = $2 LIMIT 1",
    )
    .bind(filename)
    .bind(blake2_256)
    .fetch_optional(db.pool())
    .await
}

/// Whether the filename was ever used (files are never allowed to reuse a deleted name).
pub async fn filename_registered(db: &Db, filename: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT filename FROM file_registry WHERE filename = $1")
            .bind(filename)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.is_some())
}

pub struct NewFile<'a> {
    pub id: &'a str,
    pub release_id: &'a str,
    pub project_id: &'a str,
    pub filename: &'a str,
    pub packagetype: &'a str,
    pub python_version: &'a str,
    pub comment_text: Option<&'a str>,
    pub size: i64,
    pub md5_digest: &'a str,
    pub sha256_digest: &'a str,
    pub blake2_256_digest: &'a str,
    pub path: &'a str,
    pub metadata_sha256: Option<&'a str>,
    pub metadata_blake2_256: Option<&'a str>,
    pub uploaded_via: Option<&'a str>,
}

pub async fn insert_file(
    conn: &mut AnyConnection,
    file: &NewFile<'_>,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO files (id, release_id, project_id, filename, packagetype, python_version, \
         comment_text, size, md5_digest, sha256_digest, blake2_256_digest, path, upload_time, \
         metadata_sha256, metadata_blake2_256, uploaded_via) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(file.id)
    .bind(file.release_id)
    .bind(file.project_id)
    .bind(file.filename)
    .bind(file.packagetype)
    .bind(file.python_version)
    .bind(file.comment_text)
    .bind(file.size)
    .bind(file.md5_digest)
    .bind(file.sha256_digest)
    .bind(file.blake2_256_digest)
    .bind(file.path)
    .bind(now_micros)
    .bind(file.metadata_sha256)
    .bind(file.metadata_blake2_256)
    .bind(file.uploaded_via)
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO file_registry (filename) VALUES ($1)")
        .bind(file.filename)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE projects SET total_size = total_size + $1 WHERE id = $2")
        .bind(file.size)
        .bind(file.project_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A project in the index listing.
#[derive(Clone, Debug)]
pub struct ListedProject {
    pub name: String,
    pub normalized_name: String,
    pub last_serial: i64,
}

/// Every project, ordered by normalised name.
pub async fn list_projects(db: &Db) -> Result<Vec<ListedProject>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT name, normalized_name, last_serial FROM projects ORDER BY normalized_name",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, normalized_name, last_serial)| ListedProject {
            name,
            normalized_name,
            last_serial,
        })
        .collect())
}

/// A release with what the read APIs show of it.
#[derive(Clone, Debug)]
pub struct ReleaseDetail {
    pub id: String,
    pub version: String,
    pub canonical_version: String,
    pub is_prerelease: bool,
    pub created: i64,
    pub requires_python: Option<String>,
    pub metadata: String,
    pub yanked: bool,
    pub yanked_reason: String,
}

/// A file with what the read APIs show of it.
#[derive(Clone, Debug)]
pub struct FileDetail {
    pub release_id: String,
    pub filename: String,
    pub packagetype: String,
    pub python_version: String,
    pub comment_text: Option<String>,
    pub size: i64,
    pub md5_digest: String,
    pub sha256_digest: String,
    pub blake2_256_digest: String,
    pub path: String,
    pub upload_time: i64,
    pub metadata_sha256: Option<String>,
}

type ReleaseRow = (
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    String,
    i64,
    String,
);
type FileRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
);

/// The latest version of a project: the highest final release not yanked, else the highest
/// pre-release not yanked, else the highest (`wharf_packaging::version::latest`).
pub fn latest_release(releases: &[ReleaseDetail]) -> Option<&ReleaseDetail> {
    wharf_packaging::version::latest(releases, |r| (r.version.as_str(), r.yanked))
}

/// A release of a project as summaries list it.
#[derive(Clone, Debug, sqlx::FromRow)]
struct ProjectRelease {
    id: String,
    name: String,
    normalized_name: String,
    version: String,
    summary: Option<String>,
    created: i64,
    yanked: i64,
}

/// Summaries with each project's latest version, from all the releases of the projects, in
/// the order the projects first appear.
fn latest_summaries(rows: Vec<ProjectRelease>) -> Vec<ProjectSummary> {
    let mut order: Vec<String> = Vec::new();
    let mut by_project: std::collections::HashMap<String, Vec<ProjectRelease>> =
        std::collections::HashMap::new();
    for row in rows {
        if !by_project.contains_key(&row.id) {
            order.push(row.id.clone());
        }
        by_project.entry(row.id.clone()).or_default().push(row);
    }
    order
        .into_iter()
        .filter_map(|id| {
            let releases = by_project.remove(&id)?;
            let latest = wharf_packaging::version::latest(&releases, |r| {
                (r.version.as_str(), r.yanked != 0)
            })?
            .clone();
            Some(ProjectSummary {
                name: latest.name,
                normalized_name: latest.normalized_name,
                version: latest.version,
                summary: latest.summary,
                created: latest.created,
            })
        })
        .collect()
}

/// All releases and files of a project, in no particular order.
pub async fn project_contents(
    db: &Db,
    project_id: &str,
) -> Result<(Vec<ReleaseDetail>, Vec<FileDetail>), sqlx::Error> {
    let releases: Vec<ReleaseRow> = sqlx::query_as(
        "SELECT id, version, canonical_version, is_prerelease, created, requires_python, metadata, \
         yanked, yanked_reason FROM releases WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_all(db.pool())
    .await?;
    let files: Vec<FileRow> = sqlx::query_as(
        "SELECT release_id, filename, packagetype, python_version, comment_text, size, md5_digest, \
         sha256_digest, blake2_256_digest, path, upload_time, metadata_sha256 \
         FROM files WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_all(db.pool())
    .await?;
    let releases = releases
        .into_iter()
        .map(
            |(
                id,
                version,
                canonical_version,
                pre,
                created,
                requires_python,
                metadata,
                yanked,
                yanked_reason,
            )| {
                ReleaseDetail {
                    id,
                    version,
                    canonical_version,
                    is_prerelease: pre != 0,
                    created,
                    requires_python,
                    metadata,
                    yanked: yanked != 0,
                    yanked_reason,
                }
            },
        )
        .collect();
    let files = files
        .into_iter()
        .map(
            |(
                release_id,
                filename,
                packagetype,
                python_version,
                comment_text,
                size,
                md5,
                sha256,
                blake2,
                path,
                upload_time,
                metadata_sha256,
            )| {
                FileDetail {
                    release_id,
                    filename,
                    packagetype,
                    python_version,
                    comment_text,
                    size,
                    md5_digest: md5,
                    sha256_digest: sha256,
                    blake2_256_digest: blake2,
                    path,
                    upload_time,
                    metadata_sha256,
                }
            },
        )
        .collect();
    Ok((releases, files))
}

/// The users with a role on the project, as (role, username), Owners first.
pub async fn project_roles(
    db: &Db,
    project_id: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.role_name, u.username FROM roles r JOIN users u ON u.id = r.user_id \
         WHERE r.project_id = $1 ORDER BY r.role_name DESC, u.username",
    )
    .bind(project_id)
    .fetch_all(db.pool())
    .await
}

/// A project's releases in version order and its files in (version, filename) order, as the
/// read APIs list them.
pub struct Contents {
    pub releases: Vec<ReleaseDetail>,
    pub files: Vec<FileDetail>,
}

impl Contents {
    pub async fn load(db: &Db, project_id: &str) -> Result<Contents, sqlx::Error> {
        let (mut releases, mut files) = project_contents(db, project_id).await?;
        let key = |version: &str| wharf_packaging::version::parse(version).ok();
        releases.sort_by_cached_key(|r| key(&r.version));
        let order: std::collections::HashMap<&str, usize> = releases
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        files.sort_by(|a, b| {
            let rank = |f: &FileDetail| {
                order
                    .get(f.release_id.as_str())
                    .copied()
                    .unwrap_or(usize::MAX)
            };
            rank(a)
                .cmp(&rank(b))
                .then_with(|| a.filename.cmp(&b.filename))
        });
        Ok(Contents { releases, files })
    }

    pub fn release_of(&self, file: &FileDetail) -> Option<&ReleaseDetail> {
        self.releases.iter().find(|r| r.id == file.release_id)
    }
}

/// A project as the web pages list it: its newest release's version and summary.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProjectSummary {
    pub name: String,
    pub normalized_name: String,
    pub version: String,
    pub summary: Option<String>,
    pub created: i64,
}

type SummaryRow = (String, String, String, Option<String>, i64);

fn summary_from_row(
    (name, normalized_name, version, summary, created): SummaryRow,
) -> ProjectSummary {
    ProjectSummary {
        name,
        normalized_name,
        version,
        summary,
        created,
    }
}

/// The name of the project with this id, and the filename of the file with this id (the
/// admin events page names an event's source while it exists).
pub async fn project_name_of(db: &Db, project_id: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT name FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|(name,)| name))
}

pub async fn filename_of(db: &Db, file_id: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT filename FROM files WHERE id = $1")
        .bind(file_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|(name,)| name))
}

/// `%` and `_` taken literally in a LIKE pattern.
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Projects whose name or latest version's summary contains the query (case-insensitive),
/// best first: exact name, then name matches, then summary matches.
pub async fn search(db: &Db, query: &str, limit: i64) -> Result<Vec<ProjectSummary>, sqlx::Error> {
    let normalized = wharf_packaging::name::normalize(query.trim());
    let lowered = query.trim().to_lowercase();
    let pattern = format!("%{}%", like_escape(&lowered));
    let name_pattern = format!("%{}%", like_escape(&normalized));
    // Every release of the candidates: the latest version is PEP 440's highest, which SQL
    // cannot order by, so it is chosen here and the summary checked on it.
    let rows: Vec<ProjectRelease> = sqlx::query_as(
        "SELECT p.id, p.name, p.normalized_name, r.version, r.summary, r.created, r.yanked \
         FROM projects p JOIN releases r ON r.project_id = p.id \
         WHERE p.normalized_name LIKE $1 ESCAPE '\\' OR p.id IN \
           (SELECT project_id FROM releases WHERE LOWER(COALESCE(summary, '')) LIKE $2 ESCAPE '\\') \
         ORDER BY p.normalized_name",
    )
    .bind(&name_pattern)
    .bind(pattern)
    .fetch_all(db.pool())
    .await?;
    let rank = |p: &ProjectSummary| {
        if p.normalized_name == normalized {
            0
        } else if p.normalized_name.contains(&normalized) {
            1
        } else {
            2
        }
    };
    let mut found: Vec<ProjectSummary> = latest_summaries(rows)
        .into_iter()
        .filter(|p| {
            p.normalized_name.contains(&normalized)
                || p.summary
                    .as_deref()
                    .is_some_and(|s| s.to_lowercase().contains(&lowered))
        })
        .collect();
    // Stable: within a rank, the names stay in order.
    found.sort_by_key(rank);
    found.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(found)
}

/// The newest releases across the index.
pub async fn recent_releases(db: &Db, limit: i64) -> Result<Vec<ProjectSummary>, sqlx::Error> {
    let rows: Vec<SummaryRow> = sqlx::query_as(
        "SELECT p.name, p.normalized_name, r.version, r.summary, r.created FROM releases r \
         JOIN projects p ON p.id = r.project_id ORDER BY r.created DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(summary_from_row).collect())
}

/// The projects a user has a role on, with their latest version.
pub async fn projects_of(db: &Db, user_id: &str) -> Result<Vec<ProjectSummary>, sqlx::Error> {
    let rows: Vec<ProjectRelease> = sqlx::query_as(
        "SELECT p.id, p.name, p.normalized_name, r.version, r.summary, r.created, r.yanked \
         FROM projects p JOIN roles ro ON ro.project_id = p.id AND ro.user_id = $1 \
         JOIN releases r ON r.project_id = p.id ORDER BY p.normalized_name",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    Ok(latest_summaries(rows))
}

crate::site::template_value!(ProjectSummary);
