//! `TestApp`: the whole app over a fresh database (SQLite in a temporary directory, or a
//! PostgreSQL schema of its own when `WHARF_TEST_DATABASE_URL` is set) with in-process requests.

use std::io::Write;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wharf::accounts::{self, NewUser, User};
use wharf::app::{self, AppState};
use wharf::config::Settings;
use wharf::events::RequestMeta;
use wharf::tokens::{self, TokenScope};

pub struct TestApp {
    pub state: AppState,
    router: Router,
    pub dir: tempfile::TempDir,
    /// A user with a verified e-mail address and an account-wide token.
    pub user: User,
    pub token: String,
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    /// The reason phrase, when the server set one (its error message, which twine prints).
    pub reason: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error message clients show: the reason phrase.
    pub fn message(&self) -> String {
        self.reason.clone().unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn database_url(dir: &std::path::Path) -> String {
    let Ok(base) = std::env::var("WHARF_TEST_DATABASE_URL") else {
        return format!("sqlite:{}?mode=rwc", dir.join("wharf.db").display());
    };
    // A schema of its own, so tests run in parallel on one database.
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
        .await
        .expect("postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("create schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-c%20search_path%3D{schema}")
}

/// With `WHARF_EVENT_CENSUS=DIR`, every test app writes the event tags its test produced to a
/// file in DIR when it ends, and `census::every_event_tag_is_produced_by_some_test` (run after
/// the suite) checks that together they cover every tag. SQLite runs only: the database file
/// can be read after the test's runtime is gone.
impl Drop for TestApp {
    fn drop(&mut self) {
        let Ok(census) = std::env::var("WHARF_EVENT_CENSUS") else {
            return;
        };
        let database = self.dir.path().join("wharf.db");
        if !database.exists() {
            return;
        }
        let reader = std::thread::spawn(move || -> Option<Vec<String>> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                sqlx::any::install_default_drivers();
                let url = format!("sqlite:{}?mode=ro", database.display());
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                    .await
                    .ok()?;
                let rows: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT tag FROM events")
                    .fetch_all(&mut conn)
                    .await
                    .ok()?;
                Some(rows.into_iter().map(|(t,)| t).collect())
            })
        });
        if let Ok(Some(tags)) = reader.join() {
            let _ = std::fs::create_dir_all(&census);
            let file = std::path::Path::new(&census).join(uuid::Uuid::new_v4().to_string());
            let _ = std::fs::write(file, tags.join("\n"));
        }
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::with_settings(|_| {}).await
    }

    pub async fn with_settings(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = Settings {
            data_dir: dir.path().to_owned(),
            database_url: Some(database_url(dir.path()).await),
            base_url: Some("http://wharf.test".to_owned()),
            ..Settings::default()
        };
        configure(&mut settings);
        let state = AppState::open(settings).await.expect("app state");
        let router = app::router(state.clone());
        let (user, token) = create_user(&state, "alice").await;
        TestApp {
            state,
            router,
            dir,
            user,
            token,
        }
    }

    pub async fn create_user(&self, username: &str) -> (User, String) {
        create_user(&self.state, username).await
    }

    pub async fn request(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        TestResponse {
            status,
            reason,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.get_with(uri, &[]).await
    }

    pub async fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut builder = Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.request(builder.body(Body::empty()).expect("request"))
            .await
    }

    pub async fn head_with(&self, uri: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut builder = Request::head(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.request(builder.body(Body::empty()).expect("request"))
            .await
    }

    /// POSTs an upload form with `Authorization: Basic __token__:<token>` when a token is given.
    pub async fn upload(&self, token: Option<&str>, form: &UploadForm) -> TestResponse {
        let mut builder = Request::post("/legacy/")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .header("user-agent", "twine/7.0.0 CPython/3.11.7");
        if let Some(token) = token {
            use base64::Engine;
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("__token__:{token}"));
            builder = builder.header("authorization", format!("Basic {basic}"));
        }
        self.request(builder.body(Body::from(form.encode())).expect("request"))
            .await
    }

    /// The details of the events tagged `tag`, oldest first.
    pub async fn events(&self, tag: &str) -> Vec<serde_json::Value> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT additional FROM events WHERE tag = $1 ORDER BY id")
                .bind(tag)
                .fetch_all(self.state.db.pool())
                .await
                .expect("events");
        rows.into_iter()
            .map(|(a,)| serde_json::from_str(&a).expect("json"))
            .collect()
    }

    pub async fn count(&self, table: &str) -> i64 {
        let (n,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(self.state.db.pool())
                .await
                .expect("count");
        n
    }

    /// Every stored blob (files and .metadata), by path.
    pub fn stored_files(&self) -> Vec<String> {
        let root = self.dir.path().join("files");
        let mut found = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    found.push(
                        path.strip_prefix(&root)
                            .expect("prefix")
                            .display()
                            .to_string(),
                    );
                }
            }
        }
        found.sort();
        found
    }

    /// Tables and blobs, to assert that a refused upload changed nothing.
    pub async fn snapshot(&self) -> (Vec<i64>, Vec<String>) {
        let mut counts = Vec::new();
        for table in [
            "projects",
            "releases",
            "files",
            "file_registry",
            "roles",
            "journals",
        ] {
            counts.push(self.count(table).await);
        }
        (counts, self.stored_files())
    }

    pub async fn project_token(
        &self,
        user: &User,
        projects: &[&str],
        expires_in: Option<i64>,
    ) -> String {
        let mut found = Vec::new();
        for name in projects {
            found.push(
                wharf::packaging::find_project(&self.state.db, name)
                    .await
                    .expect("db")
                    .expect("project"),
            );
        }
        let description = format!("token {}", uuid::Uuid::new_v4());
        tokens::create(
            &tokens::Issuer::of(&self.state, &self.state.settings.token_location()),
            user,
            &description,
            &TokenScope {
                projects: &found,
                expires_in,
                read_only: false,
            },
            &RequestMeta::default(),
            self.state.clock.now_micros(),
        )
        .await
        .expect("token")
    }
}

async fn create_user(state: &AppState, username: &str) -> (User, String) {
    let email = format!("{username}@example.org");
    let new = NewUser {
        username,
        email: &email,
        password: "correct horse battery",
        is_admin: false,
        email_verified: true,
    };
    let user = accounts::create_user(
        &state.db,
        &new,
        &RequestMeta::default(),
        state.clock.now_micros(),
    )
    .await
    .expect("user");
    let token = tokens::create(
        &tokens::Issuer::of(state, &state.settings.token_location()),
        &user,
        "test token",
        &TokenScope {
            projects: &[],
            expires_in: None,
            read_only: false,
        },
        &RequestMeta::default(),
        state.clock.now_micros(),
    )
    .await
    .expect("token");
    (user, token)
}

const BOUNDARY: &str = "wharf-test-boundary-7d1e";

/// An upload form as twine sends it.
#[derive(Clone)]
pub struct UploadForm {
    pub fields: Vec<(String, String)>,
    pub filename: String,
    pub content: Vec<u8>,
    pub content_type: Option<String>,
}

impl UploadForm {
    /// The form for `content` named `filename`, with metadata and correct digests.
    pub fn new(name: &str, version: &str, filename: &str, content: Vec<u8>) -> UploadForm {
        use sha2::Digest;
        let is_wheel = filename.ends_with(".whl");
        let fields = vec![
            (":action", "file_upload".to_owned()),
            ("protocol_version", "1".to_owned()),
            ("metadata_version", "2.1".to_owned()),
            ("name", name.to_owned()),
            ("version", version.to_owned()),
            ("summary", "A test package".to_owned()),
            ("requires_python", ">=3.8".to_owned()),
            (
                "filetype",
                if is_wheel { "bdist_wheel" } else { "sdist" }.to_owned(),
            ),
            (
                "pyversion",
                if is_wheel { "py3" } else { "source" }.to_owned(),
            ),
            ("sha256_digest", hex::encode(sha2::Sha256::digest(&content))),
        ];
        UploadForm {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            filename: filename.to_owned(),
            content,
            content_type: Some("application/octet-stream".to_owned()),
        }
    }

    pub fn wheel(name: &str, version: &str) -> UploadForm {
        let module = wharf_packaging::name::normalize(name).replace('-', "_");
        let filename = format!("{module}-{version}-py3-none-any.whl");
        UploadForm::new(name, version, &filename, wheel_bytes(&module, version, &[]))
    }

    pub fn sdist(name: &str, version: &str) -> UploadForm {
        let module = wharf_packaging::name::normalize(name).replace('-', "_");
        let filename = format!("{module}-{version}.tar.gz");
        UploadForm::new(
            name,
            version,
            &filename,
            sdist_bytes(&format!("{module}-{version}"), &[]),
        )
    }

    pub fn set(mut self, key: &str, value: &str) -> UploadForm {
        self.fields.retain(|(k, _)| k != key);
        self.fields.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn without(mut self, key: &str) -> UploadForm {
        self.fields.retain(|(k, _)| k != key);
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for (key, value) in &self.fields {
            write!(
                body,
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n"
            )
            .expect("write");
        }
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{}\"\r\n",
            self.filename
        )
        .expect("write");
        if let Some(content_type) = &self.content_type {
            write!(body, "Content-Type: {content_type}\r\n").expect("write");
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&self.content);
        write!(body, "\r\n--{BOUNDARY}--\r\n").expect("write");
        body
    }
}

pub const METADATA: &str = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n";

/// A wheel for `{module}-{version}` with extra members.
pub fn wheel_bytes(module: &str, version: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let dist_info = format!("{module}-{version}.dist-info");
    let mut members: Vec<(String, Vec<u8>)> = vec![
        (format!("{module}/__init__.py"), b"".to_vec()),
        (
            format!("{dist_info}/METADATA"),
            // What UploadForm::new sends: the index refuses a METADATA that differs.
            format!(
                "Metadata-Version: 2.1\nName: {module}\nVersion: {version}\nRequires-Python: >=3.8\n"
            )
            .into_bytes(),
        ),
        (
            format!("{dist_info}/WHEEL"),
            b"Wheel-Version: 1.0\nTag: py3-none-any\n".to_vec(),
        ),
    ];
    members.extend(extra.iter().map(|(n, d)| ((*n).to_owned(), d.to_vec())));
    zip_bytes(&members)
}

/// A zip of `members`. One holding a `*.dist-info/WHEEL` and no RECORD is a wheel: it gets
/// the RECORD the index requires, listing every member with its hash and size.
pub fn zip_bytes(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    use base64::Engine;
    use sha2::Digest;
    let mut members = members.to_vec();
    let dist_info = members
        .iter()
        .find_map(|(name, _)| {
            name.strip_suffix("/WHEEL")
                .filter(|d| d.ends_with(".dist-info"))
        })
        .map(str::to_owned);
    if let Some(dist_info) =
        dist_info.filter(|_| !members.iter().any(|(n, _)| n.ends_with("/RECORD")))
    {
        let mut record = String::new();
        for (name, data) in &members {
            let digest =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(data));
            record.push_str(&format!("{name},sha256={digest},{}\n", data.len()));
        }
        record.push_str(&format!("{dist_info}/RECORD,,\n"));
        members.push((format!("{dist_info}/RECORD"), record.into_bytes()));
    }
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in &members {
        zip.start_file(name.as_str(), options).expect("start");
        zip.write_all(data).expect("write");
    }
    zip.finish().expect("finish").into_inner()
}

pub fn sdist_bytes(top: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let pkg_info = format!("{top}/PKG-INFO");
    let mut members: Vec<(&str, &[u8])> = vec![(pkg_info.as_str(), METADATA.as_bytes())];
    members.extend_from_slice(extra);
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, data).expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gz")
}
