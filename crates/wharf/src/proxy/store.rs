//! The proxy's rows: the upstream pages kept (`upstream_projects`, which also says that a name
//! has been served from the upstream, or claimed for hosting) and the blocks admins set.

use sqlx::AnyConnection;
use wharf_packaging::index_page::ProjectPage;

use crate::db::Db;

/// An upstream page as kept: what it said, and how to ask whether it changed.
#[derive(Debug, Clone)]
pub struct Kept {
    pub page: ProjectPage,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// When the upstream last answered for it (unix micros).
    pub fetched_micros: i64,
}

/// What the index knows of a name with respect to the upstream.
#[derive(Debug, Clone, Default)]
pub struct NameState {
    pub kept: Option<Kept>,
    /// An admin has claimed the name for a hosted project, or a project of this index has
    /// had it (even if deleted since): it is never looked up upstream.
    pub claimed: bool,
    /// The name has been served from the upstream (and is not claimed).
    pub proxied: bool,
}

#[derive(sqlx::FromRow)]
struct Row {
    page: Option<String>,
    etag: Option<String>,
    last_modified: Option<String>,
    fetched: i64,
    claimed: Option<i64>,
    hosted: Option<i64>,
}

pub async fn name_state(db: &Db, normalized: &str) -> Result<NameState, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT page, etag, last_modified, fetched, claimed, hosted FROM upstream_projects \
         WHERE normalized_name = $1",
    )
    .bind(normalized)
    .fetch_optional(db.pool())
    .await?;
    let Some(Row {
        page,
        etag,
        last_modified,
        fetched: fetched_micros,
        claimed,
        hosted,
    }) = row
    else {
        return Ok(NameState::default());
    };
    let claimed = claimed.is_some() || hosted.is_some();
    // A page that no longer reads (a newer wharf wrote it) is as good as none: fetched again.
    let kept = page
        .and_then(|p| serde_json::from_str::<ProjectPage>(&p).ok())
        .filter(|_| !claimed)
        .map(|page| Kept {
            page,
            etag,
            last_modified,
            fetched_micros,
        });
    Ok(NameState {
        kept,
        claimed,
        proxied: !claimed,
    })
}

/// Keeps a page the upstream sent (the first one marks the name as served from upstream).
/// False when the name has been claimed or hosted meanwhile: the page is not the name's.
pub async fn save_page(db: &Db, normalized: &str, kept: &Kept) -> Result<bool, sqlx::Error> {
    let page = serde_json::to_string(&kept.page).unwrap_or_default();
    // A claim made meanwhile wins: the page is not kept over it.
    let done = sqlx::query(
        "INSERT INTO upstream_projects (normalized_name, page, etag, last_modified, fetched, first_served) \
         VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (normalized_name) DO UPDATE SET page = $2, etag = $3, last_modified = $4, fetched = $5 \
         WHERE upstream_projects.claimed IS NULL AND upstream_projects.hosted IS NULL",
    )
    .bind(normalized)
    .bind(page)
    .bind(kept.etag.as_deref())
    .bind(kept.last_modified.as_deref())
    .bind(kept.fetched_micros)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The upstream has no such project (any more): its kept page goes, so its files are not
/// served from it; the row stays, and with it the rule that the name was the upstream's.
pub async fn drop_page(db: &Db, normalized: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE upstream_projects SET page = NULL, etag = NULL, last_modified = NULL \
         WHERE normalized_name = $1",
    )
    .bind(normalized)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The upstream said the kept page is still current.
pub async fn touch(db: &Db, normalized: &str, now_micros: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE upstream_projects SET fetched = $1 WHERE normalized_name = $2")
        .bind(now_micros)
        .bind(normalized)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Whether a new hosted project may not take this name: it has been served from the
/// upstream and no admin has claimed it. (Checked again by `mark_hosted`, in the transaction.)
pub async fn is_proxied(conn: &mut AnyConnection, normalized: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM upstream_projects WHERE normalized_name = $1 \
         AND claimed IS NULL AND hosted IS NULL",
    )
    .bind(normalized)
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}

/// Marks the name of a project being created, in the transaction that creates it: from now
/// on it is never looked up upstream, even once the project is deleted. Returns false when
/// the name has been served from the upstream, no admin has claimed it and the index proxies
/// (the transaction is then to be rolled back): checked here, in the transaction, so that no
/// page fetched meanwhile by another process slips between a check and the creation.
pub async fn mark_hosted(
    conn: &mut AnyConnection,
    normalized: &str,
    now_micros: i64,
    proxying: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO upstream_projects (normalized_name, page, fetched, first_served, hosted) \
         VALUES ($1, NULL, $2, $2, $2) ON CONFLICT (normalized_name) DO NOTHING",
    )
    .bind(normalized)
    .bind(now_micros)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() > 0 {
        return Ok(true);
    }
    if proxying && is_proxied(&mut *conn, normalized).await? {
        return Ok(false);
    }
    // Claimed, or served from an upstream the index no longer proxies: hosted from now on.
    sqlx::query(
        "UPDATE upstream_projects SET hosted = $2, page = NULL, etag = NULL, last_modified = NULL \
         WHERE normalized_name = $1 AND hosted IS NULL",
    )
    .bind(normalized)
    .bind(now_micros)
    .execute(conn)
    .await?;
    Ok(true)
}

/// Claims the name for a hosted project: its kept page is dropped and it is never looked up
/// upstream again. Returns false when it was claimed already.
pub async fn claim(
    conn: &mut AnyConnection,
    normalized: &str,
    claimed_by: &str,
    now_micros: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO upstream_projects (normalized_name, page, fetched, first_served, claimed_by, claimed) \
         VALUES ($1, NULL, $3, $3, $2, $3) \
         ON CONFLICT (normalized_name) DO UPDATE SET page = NULL, etag = NULL, last_modified = NULL, \
         claimed_by = $2, claimed = $3 WHERE upstream_projects.claimed IS NULL",
    )
    .bind(normalized)
    .bind(claimed_by)
    .bind(now_micros)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A block of an upstream project (`version` empty: all of it) or of one version.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Block {
    pub normalized_name: String,
    pub version: String,
    pub reason: String,
    pub created_by: String,
    pub created: i64,
}

impl Block {
    /// Whether the block covers a file of `version`: PEP 440 equality (`1.0` is `1.0.0`), and a
    /// block without a local label covers every local build of it (`1.0` covers `1.0+acme`).
    /// It fails closed: a file whose version cannot be read is covered by any block of its
    /// project, so an odd file name is never a way around one.
    pub fn covers(&self, version: Option<&wharf_packaging::version::Version>) -> bool {
        if self.version.is_empty() {
            return true;
        }
        let Some(version) = version else {
            return true;
        };
        let Ok(blocked) = wharf_packaging::version::parse(&self.version) else {
            return true;
        };
        if blocked.is_local() {
            blocked == *version
        } else {
            blocked == version.clone().without_local()
        }
    }
}

pub async fn blocks_of(db: &Db, normalized: &str) -> Result<Vec<Block>, sqlx::Error> {
    sqlx::query_as(
        "SELECT normalized_name, version, reason, created_by, created FROM upstream_blocks \
         WHERE normalized_name = $1",
    )
    .bind(normalized)
    .fetch_all(db.pool())
    .await
}

pub async fn all_blocks(db: &Db) -> Result<Vec<Block>, sqlx::Error> {
    sqlx::query_as(
        "SELECT normalized_name, version, reason, created_by, created FROM upstream_blocks \
         ORDER BY normalized_name, version",
    )
    .fetch_all(db.pool())
    .await
}

/// The block of `version` (PEP 440 equality; empty: the whole project), if there is one.
async fn block_id(
    conn: &mut AnyConnection,
    normalized: &str,
    version: &str,
) -> Result<Option<String>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, version FROM upstream_blocks WHERE normalized_name = $1")
            .bind(normalized)
            .fetch_all(conn)
            .await?;
    let wanted = wharf_packaging::version::parse(version).ok();
    Ok(rows
        .into_iter()
        .find(|(_, v)| {
            if v.is_empty() || version.is_empty() {
                v.is_empty() && version.is_empty()
            } else {
                wanted.is_some() && wharf_packaging::version::parse(v).ok() == wanted
            }
        })
        .map(|(id, _)| id))
}

/// Adds a block; false when the same block (by PEP 440 equality) exists already.
pub async fn add_block(conn: &mut AnyConnection, block: &Block) -> Result<bool, sqlx::Error> {
    if block_id(conn, &block.normalized_name, &block.version)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let done = sqlx::query(
        "INSERT INTO upstream_blocks (id, normalized_name, version, reason, created_by, created) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (normalized_name, version) DO NOTHING",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&block.normalized_name)
    .bind(&block.version)
    .bind(&block.reason)
    .bind(&block.created_by)
    .bind(block.created)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Removes a block (of `version` by PEP 440 equality); false when there was none.
pub async fn remove_block(
    conn: &mut AnyConnection,
    normalized: &str,
    version: &str,
) -> Result<bool, sqlx::Error> {
    let Some(id) = block_id(conn, normalized, version).await? else {
        return Ok(false);
    };
    let done = sqlx::query("DELETE FROM upstream_blocks WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Notes in the journal that what the index serves for a proxied name changed (a block, a
/// claim), so that every process drops its copy within `cache_refresh_ms`, as for uploads.
pub async fn journal(
    conn: &mut AnyConnection,
    normalized: &str,
    version: &str,
    action: &str,
    by: &str,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO journals (name, version, action, submitted_date, submitted_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(normalized)
    .bind((!version.is_empty()).then_some(version))
    .bind(action)
    .bind(now_micros)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Names served from the upstream, newest first (for admins).
pub async fn proxied_names(db: &Db, limit: i64) -> Result<Vec<(String, i64, bool)>, sqlx::Error> {
    let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT normalized_name, fetched, claimed FROM upstream_projects WHERE hosted IS NULL \
         ORDER BY first_served DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, fetched, claimed)| (name, fetched, claimed.is_some()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::version_of;

    fn block(version: &str) -> Block {
        Block {
            normalized_name: "demo".to_owned(),
            version: version.to_owned(),
            reason: "r".to_owned(),
            created_by: "admin".to_owned(),
            created: 0,
        }
    }

    fn covered(block_version: &str, filename: &str) -> bool {
        block(block_version).covers(version_of(filename).as_ref())
    }

    #[test]
    fn a_version_block_covers_every_file_of_it_and_fails_closed() {
        assert!(covered("1.0", "demo-1.0.0-py3-none-any.whl"));
        assert!(covered("1.0", "demo-1.0.tar.gz"));
        // Older archive kinds are read too.
        assert!(covered("1.0", "demo-1.0.tar.bz2"));
        assert!(covered("1.0", "demo-1.0.tgz"));
        assert!(!covered("1.0", "demo-2.0.tar.bz2"));
        // A local build of a blocked release is blocked; a blocked local build is only that.
        assert!(covered("1.0", "demo-1.0+acme-py3-none-any.whl"));
        assert!(covered("1.0+acme", "demo-1.0+acme-py3-none-any.whl"));
        assert!(!covered("1.0+acme", "demo-1.0-py3-none-any.whl"));
        assert!(!covered("1.0", "demo-1.0.post1-py3-none-any.whl"));
        // A file whose version cannot be read is covered by any block of its project.
        assert!(covered("1.0", "demo-1.0-py2.7.egg"));
        assert!(covered("1.0", "demo.exe"));
        assert!(covered("", "demo-3.0-py3-none-any.whl"));
    }
}
