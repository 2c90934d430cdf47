//! The SQLite and PostgreSQL migration folders are written by hand side by side; this checks
//! that they define the same tables, columns and indexes. It runs in the PostgreSQL pass (it
//! needs both databases) and compares what the migrations produced, not their text.

use std::collections::BTreeSet;

use crate::util::TestApp;

type Schema = (BTreeSet<(String, String)>, BTreeSet<(String, String)>);

async fn sqlite_schema() -> Schema {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("s.db").display());
    let db = wharf::db::Db::connect(&url).await.expect("sqlite");
    db.migrate().await.expect("migrate sqlite");
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
    )
    .fetch_all(db.pool())
    .await
    .expect("columns");
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT tbl_name, name FROM sqlite_master \
         WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'",
    )
    .fetch_all(db.pool())
    .await
    .expect("indexes");
    db.close().await;
    (columns.into_iter().collect(), indexes.into_iter().collect())
}

async fn postgres_schema(app: &TestApp) -> Schema {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'",
    )
    .fetch_all(app.state.db.pool())
    .await
    .expect("columns");
    // Indexes created by the migrations, not those behind primary keys and UNIQUE columns.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = i.relnamespace \
         WHERE n.nspname = current_schema() \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(app.state.db.pool())
    .await
    .expect("indexes");
    (columns.into_iter().collect(), indexes.into_iter().collect())
}

#[tokio::test]
async fn both_migration_folders_define_the_same_schema() {
    if std::env::var("WHARF_TEST_DATABASE_URL").is_err() {
        eprintln!("needs PostgreSQL: checked in the PostgreSQL pass");
        return;
    }
    let app = TestApp::new().await;
    let (sqlite_columns, sqlite_indexes) = sqlite_schema().await;
    let (pg_columns, pg_indexes) = postgres_schema(&app).await;
    assert!(sqlite_columns.len() > 50, "{sqlite_columns:?}");
    let only = |a: &BTreeSet<(String, String)>, b: &BTreeSet<(String, String)>| {
        a.difference(b).cloned().collect::<Vec<_>>()
    };
    assert_eq!(
        (
            only(&sqlite_columns, &pg_columns),
            only(&pg_columns, &sqlite_columns)
        ),
        (vec![], vec![]),
        "columns only in SQLite's migrations, only in PostgreSQL's"
    );
    assert_eq!(
        (
            only(&sqlite_indexes, &pg_indexes),
            only(&pg_indexes, &sqlite_indexes)
        ),
        (vec![], vec![]),
        "indexes only in SQLite's migrations, only in PostgreSQL's"
    );
}
