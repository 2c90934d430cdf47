//! The database: one sqlx `AnyPool` over SQLite or PostgreSQL, one set of queries with `$N`
//! placeholders, and migrations per backend.

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// What this process knows of coalesced events (`ratelimit::Coalesce`), so that a flood
    /// of like failures is counted in memory rather than written row by row.
    pub(crate) coalesced: std::sync::Arc<crate::ratelimit::Coalesced>,
}

pub type Tx = Transaction<'static, Any>;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Db {
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL: use sqlite:PATH or postgres://…");
        };
        let options = AnyPoolOptions::new();
        let options = match backend {
            // SQLite: WAL so readers never wait for the writer; writers queue on busy_timeout.
            Backend::Sqlite => options
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                        Ok(())
                    })
                }),
            // PostgreSQL away (restarting): a request waits this long for a connection, then
            // answers 503 with Retry-After; the pool reconnects by itself once it is back.
            Backend::Postgres => options
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5)),
        };
        let pool = options
            .connect(url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
        Ok(Db {
            pool,
            backend,
            coalesced: Default::default(),
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Whether the database answers (`/_health`).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so two writers queue instead of failing on lock upgrade.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// True when the error is a unique-constraint violation (a lost race, usually).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}
