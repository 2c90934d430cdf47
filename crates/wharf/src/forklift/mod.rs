//! The upload endpoint (`POST /legacy/`), warehouse's "forklift": every check of
//! `spec/index-protocols.md` §1.3 that applies, in order, then the file is stored under its
//! content address and its rows are committed in one transaction.

mod checks;
mod form;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Redirect;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use blake2::Blake2b;
use blake2::digest::consts::U32;
use sha2::{Digest, Sha256};
use wharf_packaging::filename::{self, PackageType};
use wharf_packaging::metadata::{Form, Metadata};
use wharf_packaging::{name, version};

use crate::accounts;
use crate::auth::{self, UploadIdentity};
use crate::error::{AppError, AppResult};
use crate::events::{self, EventTag, RequestMeta};
use crate::oidc::publishers::{self, Publishing};
use crate::packaging::import::ImportMark;
use crate::packaging::permissions::{self, Denied};
use crate::packaging::{self, NameRefusal, NewFile, NewRelease, Project, Published};
use crate::request::request_meta;
use crate::simple::encode_segment;
use crate::state::AppState;
use checks::{UploadFields, inspect, upload_fields};
use form::{Content, LimitFor, UploadForm};

/// The upload API: `/legacy/` takes bodies of any size (the limits are checked as it streams).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/legacy/", post(upload).layer(DefaultBodyLimit::disable()))
        .route(
            "/legacy",
            post(|| async { Redirect::permanent("/legacy/") }),
        )
        // hatch and flit print `<repository>/<name>/<version>/` after an upload (PyPI's own
        // upload URL answers there): the project's page is what the user wants to see.
        .route("/legacy/{project}/", get(project_page))
        .route("/legacy/{project}/{version}/", get(release_page))
}

async fn project_page(Path(project): Path<String>) -> Redirect {
    Redirect::permanent(&format!("/project/{}/", encode_segment(&project)))
}

async fn release_page(Path((project, version)): Path<(String, String)>) -> Redirect {
    Redirect::permanent(&format!(
        "/project/{}/{}/",
        encode_segment(&project),
        encode_segment(&version)
    ))
}

/// Projects may not grow past this in total (PyPI's default).
const MAX_PROJECT_SIZE: i64 = 10 * 1024 * 1024 * 1024;
/// Files may be added to a release only this long after it was created.
const RELEASE_UPLOAD_WINDOW_SECS: i64 = 14 * 24 * 3600;

pub async fn upload(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let meta = request_meta(&parts, &state.settings);
    match handle(&state, &parts, body, &meta).await {
        Ok(response) => response,
        Err(error) => error.render(&parts.headers),
    }
}

async fn handle(
    state: &AppState,
    parts: &Parts,
    body: Body,
    meta: &RequestMeta,
) -> AppResult<Response> {
    let started = std::time::Instant::now();
    let query_action = action_from_query(parts.uri.query());
    if let Some(action) = &query_action {
        check_action(action)?;
    }
    let identity = match auth::authenticate_upload(state, &parts.headers, meta).await {
        Ok(identity) => identity,
        Err(error) => {
            // Read what the client is sending before answering, so it sees the answer rather
            // than a connection reset in the middle of its upload.
            drain(body, state.settings.max_upload_size).await;
            return Err(error);
        }
    };
    let authenticated = started.elapsed();
    std::fs::create_dir_all(state.settings.tmp_dir()).map_err(AppError::from)?;
    let upload_form = form::read(parts, body, &state.settings.tmp_dir(), &Limits { state }).await?;
    let read = started.elapsed() - authenticated;

    let action = query_action.or_else(|| upload_form.get(":action").map(str::to_owned));
    check_action(action.as_deref().unwrap_or_default())?;
    if upload_form.get("protocol_version").unwrap_or("1") != "1" {
        return Err(AppError::bad_request("Unknown protocol version."));
    }
    let import = parts.extensions.get::<ImportMark>();
    let (response, phases) = file_upload(
        state,
        meta,
        &identity,
        upload_form,
        user_agent(parts),
        import,
    )
    .await?;
    // Where an upload's time goes (`RUST_LOG=wharf::forklift=debug`; bench/uploads.sh).
    tracing::debug!(
        auth_us = authenticated.as_micros() as u64,
        read_us = read.as_micros() as u64,
        checks_us = phases.checks.as_micros() as u64,
        inspect_us = phases.inspect.as_micros() as u64,
        store_us = phases.store.as_micros() as u64,
        commit_us = phases.commit.as_micros() as u64,
        total_us = started.elapsed().as_micros() as u64,
        "upload timing"
    );
    Ok(response)
}

/// The time an upload spent in each phase after its body was read (over every attempt).
#[derive(Default)]
struct Phases {
    /// The checks against the index as it is (the project, the name, permissions, the file).
    checks: std::time::Duration,
    /// Reading the archive (wheel or sdist) and its METADATA.
    inspect: std::time::Duration,
    /// Writing the file and its METADATA to storage.
    store: std::time::Duration,
    /// The transaction: rows, events, token use, commit.
    commit: std::time::Duration,
}

fn user_agent(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect())
}

fn action_from_query(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == ":action")
        .map(|(_, v)| v.into_owned())
}

fn check_action(action: &str) -> AppResult<()> {
    match action {
        "file_upload" => Ok(()),
        "submit" | "submit_pkg_info" => Err(AppError::gone(
            "Project pre-registration is no longer required or supported, upload your files instead.",
        )),
        "doc_upload" => Err(AppError::gone(
            "Uploading documentation is no longer supported, we recommend using https://readthedocs.org/.",
        )),
        "" => Err(AppError::bad_request(
            "Missing ':action' parameter: use ':action=file_upload'.",
        )),
        other => Err(AppError::bad_request(format!(
            "Unknown action '{other}': use ':action=file_upload'."
        ))),
    }
}

async fn drain(body: Body, limit: u64) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen = 0u64;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len() as u64;
        if seen > limit {
            break;
        }
    }
}

struct Limits<'a> {
    state: &'a AppState,
}

impl LimitFor for Limits<'_> {
    type Error = AppError;
    async fn limit_for(&self, fields: &[(String, String)]) -> AppResult<(u64, String)> {
        let default = self.state.settings.max_upload_size;
        let name = fields
            .iter()
            .find(|(k, _)| k == "name")
            .map(|(_, v)| v.as_str());
        let Some(name) = name else {
            return Ok((default, "unknown".to_owned()));
        };
        let project = packaging::find_project(&self.state.db, &name::normalize(name)).await?;
        Ok((effective_limit(default, project.as_ref()), name.to_owned()))
    }
}

fn effective_limit(default: u64, project: Option<&Project>) -> u64 {
    let own = project
        .and_then(|p| p.upload_limit)
        .map_or(0, |l| l.max(0) as u64);
    default.max(own)
}

/// PyPI's message for a file over its project's limit.
fn file_too_large(project: &str, limit: u64) -> AppError {
    AppError::bad_request(format!(
        "File too large. Limit for project '{project}' is {} MB. See https://docs.pypi.org/project-management/storage-limits#requesting-a-file-size-limit-increase for more information.",
        limit / (1024 * 1024)
    ))
}

fn help(state: &AppState, anchor: &str) -> String {
    format!(
        "See {}/help/#{anchor} for more information.",
        state.settings.base_url()
    )
}

/// Tries per upload: a first upload can lose the race to create its project or release, or to
/// add its file, to a parallel upload; it then looks again and goes on as if it came second.
const MAX_ATTEMPTS: usize = 3;

/// One upload, checked and committed by [`Upload::attempt`].
struct Upload<'a> {
    state: &'a AppState,
    meta: &'a RequestMeta,
    identity: &'a UploadIdentity,
    metadata: &'a Metadata,
    fields: &'a UploadFields,
    content: &'a Content,
    uploaded_via: Option<&'a str>,
    /// Set when `wharf import` makes the upload.
    import: Option<&'a ImportMark>,
}

/// What an attempt does not need to do again: inspecting the archive and storing the blobs
/// depend only on the file and the normalised name.
#[derive(Default)]
struct Prepared {
    /// The wheel's METADATA for PEP 658 (`None` for an sdist), once inspected.
    inspected: Option<Option<Vec<u8>>>,
    /// The file's storage path and its METADATA's (sha256, blake2_256), once stored.
    stored: Option<(String, Option<(String, String)>)>,
    phases: Phases,
}

/// How an attempt ended when nothing was wrong with the upload.
enum Outcome {
    Done(Response),
    /// A parallel upload created the project, release or file first: look again.
    Raced,
}

async fn file_upload(
    state: &AppState,
    meta: &RequestMeta,
    identity: &UploadIdentity,
    form: UploadForm,
    uploaded_via: Option<String>,
    import: Option<&ImportMark>,
) -> AppResult<(Response, Phases)> {
    let metadata = Metadata::from_form(&Form::new(&form.fields)).map_err(AppError::bad_request)?;
    let fields = upload_fields(&form)?;
    let Some(content) = &form.content else {
        return Err(AppError::bad_request(
            "Upload payload does not have a file.",
        ));
    };
    let upload = Upload {
        state,
        meta,
        identity,
        metadata: &metadata,
        fields: &fields,
        content,
        uploaded_via: uploaded_via.as_deref(),
        import,
    };
    let mut prepared = Prepared::default();
    for _ in 0..MAX_ATTEMPTS {
        if let Outcome::Done(response) = upload.attempt(&mut prepared).await? {
            return Ok((response, prepared.phases));
        }
    }
    Err(AppError::conflict(format!(
        "Parallel uploads to '{}' kept changing it while this one was checked: upload again. {}",
        metadata.name,
        help(state, "project-name")
    )))
}

impl Upload<'_> {
    /// Every check against the index as it is now, then one transaction.
    async fn attempt(&self, prepared: &mut Prepared) -> AppResult<Outcome> {
        let Upload {
            state,
            meta,
            identity,
            metadata,
            fields,
            content,
            uploaded_via,
            import,
        } = *self;
        let mut phase = std::time::Instant::now();
        let normalized = name::normalize(&metadata.name);

        // The project, or the one this upload will create.
        let existing = packaging::find_project(&state.db, &normalized).await?;
        if existing.is_none() && matches!(identity, UploadIdentity::Publisher(_)) {
            return Err(AppError::forbidden(format!(
                "Invalid API Token: a trusted publisher can upload only to the projects it is registered for, \
                 and '{}' does not exist. To let a CI workflow create a project, register it as a pending \
                 publisher at {}/manage/account/publishing/. {}",
                metadata.name,
                state.settings.base_url(),
                help(state, "trusted-publishers")
            )));
        }
        let project = match &existing {
            Some(project) => project.clone(),
            None => match check_new_project(state, &metadata.name, &normalized).await? {
                Some(project) => project,
                None => return Ok(Outcome::Raced),
            },
        };
        identity.authorize(state, meta, &project).await?;
        let mut publishing = Publishing::default();
        if let Some(user) = identity.user() {
            check_user_may_upload(state, user, &project, existing.is_none()).await?;
            if existing.is_some() {
                publishing = publishers::publishing(&state.db, &project.id).await?;
            }
            if publishing.trusted_only {
                return Err(AppError::forbidden(format!(
                    "Only trusted publishers may upload to '{}': its Owners turned API-token uploads off. \
                     Publish from the CI workflow registered at {}/manage/project/{}/publishing/ instead.",
                    project.name,
                    state.settings.base_url(),
                    project.normalized_name
                )));
            }
        }

        // The file itself.
        filename::check_filename(&content.filename, fields.package_type)
            .map_err(AppError::bad_request)?;
        // A part without a type is read as application/octet-stream (uv sends none).
        if content
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("image/"))
        {
            return Err(AppError::bad_request("Invalid distribution file."));
        }
        let limit = effective_limit(state.settings.max_upload_size, Some(&project));
        if content.size > limit {
            return Err(file_too_large(&project.name, limit));
        }
        if project.total_size.saturating_add(content.size as i64) > MAX_PROJECT_SIZE {
            return Err(AppError::bad_request(format!(
                "Project size too large. Limit for project '{}' total size is {} GB. See https://docs.pypi.org/project-management/storage-limits#requesting-a-project-size-limit-increase for more information.",
                project.name,
                MAX_PROJECT_SIZE / (1024 * 1024 * 1024)
            )));
        }
        let digests_match = [
            (&fields.md5, &content.md5),
            (&fields.sha256, &content.sha256),
            (&fields.blake2_256, &content.blake2_256),
        ]
        .iter()
        .all(|(given, computed)| given.as_ref().is_none_or(|g| g == *computed));
        if !digests_match {
            return Err(AppError::bad_request(
                "The digest supplied does not match a digest calculated from the uploaded file.",
            ));
        }
        // The registry is read before the files: a name registered by a parallel upload that
        // has committed since is then seen in `files` too, and reported as existing, not deleted.
        let registered = packaging::filename_registered(&state.db, &content.filename).await?;
        if let Some((filename, sha256, blake2)) =
            packaging::find_duplicate_file(&state.db, &content.filename, &content.blake2_256)
                .await?
        {
            if filename == content.filename
                && sha256 == content.sha256
                && blake2 == content.blake2_256
            {
                return Ok(Outcome::Done(StatusCode::OK.into_response()));
            }
            return Err(AppError::bad_request(format!(
                "File already exists ('{filename}', with blake2_256 hash '{blake2}'). {}",
                help(state, "file-name-reuse")
            )));
        }
        if registered {
            return Err(AppError::bad_request(format!(
                "This filename was previously used by a file that has since been deleted. Use a different version. {}",
                help(state, "file-name-reuse")
            )));
        }
        let parsed_version = version::parse(&metadata.version).map_err(AppError::bad_request)?;
        let canonical = version::canonicalize(&parsed_version);
        let release = match &existing {
            Some(project) => packaging::find_release(&state.db, &project.id, &canonical).await?,
            None => None,
        };
        if let Some(release) = &release {
            if state.clock.now_micros() - release.created > RELEASE_UPLOAD_WINDOW_SECS * 1_000_000 {
                return Err(AppError::bad_request(
                    "Uploading new files to releases older than 14 days is not allowed.",
                ));
            }
            if fields.package_type == PackageType::Sdist
                && packaging::release_has_sdist(&state.db, &release.id).await?
            {
                return Err(AppError::bad_request(
                    "Only one sdist may be uploaded per release.",
                ));
            }
        }
        prepared.phases.checks += phase.elapsed();
        phase = std::time::Instant::now();
        if prepared.inspected.is_none() {
            let wheel_metadata = inspect(
                &project,
                metadata,
                &parsed_version,
                fields.package_type,
                content,
                &state.settings.allowed_platform_tags,
            )
            .await?;
            prepared.inspected = Some(wheel_metadata);
        }

        prepared.phases.inspect += phase.elapsed();
        phase = std::time::Instant::now();
        // Store the blobs, then commit the rows: a failure after this point leaves at most an
        // unreferenced blob.
        let stored = match prepared.stored.take() {
            Some(stored) => stored,
            None => {
                let path = content_path(&content.blake2_256, &content.filename);
                state.storage.put_file(&path, content.file.path()).await?;
                let metadata_digests = match prepared.inspected.clone().flatten() {
                    Some(bytes) => {
                        let digests = (
                            hex::encode(Sha256::digest(&bytes)),
                            hex::encode(Blake2b::<U32>::digest(&bytes)),
                        );
                        state
                            .storage
                            .put_bytes(&format!("{path}.metadata"), bytes)
                            .await?;
                        Some(digests)
                    }
                    None => None,
                };
                (path, metadata_digests)
            }
        };
        let (path, metadata_digests) = &*prepared.stored.insert(stored);
        prepared.phases.store += phase.elapsed();
        phase = std::time::Instant::now();

        let now = state.clock.now_micros();
        // New ids are only used when the release or file is created.
        let had_release = release.is_some();
        let release_id = release
            .map(|r| r.id)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let file_id = uuid::Uuid::new_v4().to_string();
        let release_metadata = crate::api::metadata_json(metadata).to_string();
        let (uploader_id, uploader_name, publisher) = match identity {
            UploadIdentity::User { user, .. } => {
                (Some(user.id.as_str()), user.username.as_str(), None)
            }
            // Warehouse's words for an upload without a user.
            UploadIdentity::Publisher(token) => {
                (None, "OpenID created token", Some(token.event_details()))
            }
        };
        let upload = packaging::Publish {
            project: &project,
            new_project: existing.is_none(),
            display_name: &metadata.name,
            uploader_id,
            uploader_name,
            version: &metadata.version,
            canonical_version: &canonical,
            new_release: (!had_release).then(|| NewRelease {
                id: &release_id,
                project_id: &project.id,
                version: &metadata.version,
                canonical_version: &canonical,
                is_prerelease: parsed_version.any_prerelease(),
                summary: metadata.summary.as_deref(),
                requires_python: metadata.requires_python.as_deref(),
                metadata: &release_metadata,
                uploader_id,
            }),
            file: NewFile {
                id: &file_id,
                release_id: &release_id,
                project_id: &project.id,
                filename: &content.filename,
                packagetype: fields.package_type.as_str(),
                python_version: &fields.pyversion,
                comment_text: fields.comment.as_deref(),
                size: content.size as i64,
                md5_digest: &content.md5,
                sha256_digest: &content.sha256,
                blake2_256_digest: &content.blake2_256,
                path,
                metadata_sha256: metadata_digests.as_ref().map(|d| d.0.as_str()),
                metadata_blake2_256: metadata_digests.as_ref().map(|d| d.1.as_str()),
                uploaded_via,
            },
            token_id: identity.token_id(),
            publisher,
        };
        // A parallel upload that commits first makes one of the inserts fail (PostgreSQL
        // then refuses the rest of the transaction): it is rolled back when dropped.
        let mut tx = state.db.begin().await?;
        let mut batch = events::Batch::new(meta, now);
        if packaging::publish(&mut tx, &mut batch, &upload, now).await? == Published::Raced {
            return Ok(Outcome::Raced);
        }
        // The name is hosted from now on, even once deleted; checked again here, in the
        // transaction, as another process may have served it from the upstream meanwhile.
        if existing.is_none()
            && !crate::proxy::store::mark_hosted(
                &mut tx,
                &project.normalized_name,
                now,
                state.proxy.is_some(),
            )
            .await?
        {
            return Err(served_from_upstream(
                &metadata.name,
                &project.normalized_name,
            ));
        }
        // The name's pending publishers can no longer create it.
        if existing.is_none() {
            crate::oidc::pending::drop_for_name(
                &mut tx,
                &mut batch,
                &project.normalized_name,
                "the project was created by an upload",
            )
            .await?;
        }
        // `wharf import`: the source's upload time and the import event, in this transaction.
        if let Some(import) = import {
            if let Some(time) = import.upload_time_micros {
                packaging::import::set_upload_time(&mut tx, &file_id, time).await?;
            }
            let mut details = import.details.clone();
            details["filename"] = serde_json::json!(content.filename);
            details["project_id"] = serde_json::json!(project.id);
            batch.add(
                events::Source::File(&file_id),
                EventTag::FileImport,
                details,
            );
        }
        // The token's use, in the same transaction: one commit per upload (a publisher's
        // token is recorded in the file's event).
        if let UploadIdentity::User { token, .. } = identity {
            token
                .touch(&mut tx, &mut batch, &project.normalized_name, now)
                .await?;
        }
        batch.flush(&mut tx).await?;
        tx.commit().await?;
        prepared.phases.commit += phase.elapsed();

        state.cache.invalidate_project(&project.normalized_name);
        if publishing.has_publisher
            && let UploadIdentity::User { user, token } = identity
        {
            notify_token_upload(
                state,
                meta,
                &project,
                &user.username,
                token.description(),
                &content.filename,
            );
        }
        Ok(Outcome::Done(StatusCode::OK.into_response()))
    }
}

/// Tells the project's Owners that an API token uploaded to a project that has a trusted
/// publisher (Warehouse's `api-token-used-in-trusted-publisher-project`), after the commit.
fn notify_token_upload(
    state: &AppState,
    meta: &RequestMeta,
    project: &Project,
    uploader: &str,
    token_name: &str,
    filename: &str,
) {
    let page = serde_json::json!({
        "project_name": project.name,
        "normalized_name": project.normalized_name,
        "uploader": uploader,
        "token_name": token_name,
        "filename": filename,
    });
    state.mailer.notify_owners(
        &state.db,
        &project.id,
        "api-token-used-in-trusted-publisher-project",
        page,
        meta,
        state.clock.now_micros(),
    );
}

fn served_from_upstream(display: &str, normalized: &str) -> AppError {
    AppError::forbidden(format!(
        "The name '{display}' is served from the upstream index, so a project of this index may not take it \
         (that would let one name mean two projects). An administrator can claim it for this index first: \
         wharf project claim {normalized}"
    ))
}

/// Who may upload at all, for a user's token: the one project decision (a new project makes
/// the uploader its Owner), then a verified address.
async fn check_user_may_upload(
    state: &AppState,
    user: &crate::accounts::User,
    project: &Project,
    new_project: bool,
) -> AppResult<()> {
    let decided = permissions::authorize_upload(
        &state.db,
        state.settings.require_2fa,
        user,
        project,
        new_project,
    )
    .await?;
    match decided {
        Ok(()) => {}
        // Tokens are one factor: where two are required, the token's owner must have 2FA.
        Err(Denied::Needs2fa) => {
            return Err(AppError::forbidden(format!(
                "User '{}', associated with the API token used, does not have two-factor \
                 authentication enabled, and '{}' requires it. Enable it at {}/manage/account/two-factor/",
                user.username,
                project.name,
                state.settings.base_url()
            )));
        }
        Err(_) => {
            return Err(AppError::forbidden(format!(
                "The user '{}' isn't allowed to upload to project '{}'. {}",
                user.username,
                project.name,
                help(state, "project-name")
            )));
        }
    }
    if !accounts::has_verified_primary_email(&state.db, &user.id).await? {
        return Err(AppError::forbidden(format!(
            "User '{}' does not have a verified primary email address. Please add a verified primary email before attempting to upload. {}",
            user.username,
            help(state, "verified-email")
        )));
    }
    Ok(())
}

/// Checks that a new project may take this name; `None` when a parallel upload has just
/// created it (look again).
async fn check_new_project(
    state: &AppState,
    display: &str,
    normalized: &str,
) -> AppResult<Option<Project>> {
    match packaging::check_new_name(&state.db, display, normalized, state.proxy.is_some()).await? {
        Ok(()) => {}
        Err(NameRefusal::Stdlib) => {
            return Err(AppError::bad_request(format!(
                "The name '{display}' isn't allowed (conflict with Python Standard Library module name). {}",
                help(state, "project-name")
            )));
        }
        Err(NameRefusal::Proxied) => return Err(served_from_upstream(display, normalized)),
        // Committed by a parallel upload since it was looked up.
        Err(NameRefusal::Taken) => return Ok(None),
        Err(NameRefusal::Confusable(existing)) => {
            return Err(AppError::bad_request(format!(
                "The name '{display}' is too similar to an existing project ('{existing}'). {}",
                help(state, "project-name")
            )));
        }
    }
    Ok(Some(Project {
        id: uuid::Uuid::new_v4().to_string(),
        name: display.to_owned(),
        normalized_name: normalized.to_owned(),
        last_serial: 0,
        upload_limit: None,
        total_size: 0,
        owners_require_2fa: false,
    }))
}

/// `blake2[:2]/blake2[2:4]/blake2[4:]/filename`, as on files.pythonhosted.org.
pub fn content_path(blake2_256: &str, filename: &str) -> String {
    format!(
        "{}/{}/{}/{filename}",
        &blake2_256[..2],
        &blake2_256[2..4],
        &blake2_256[4..]
    )
}
