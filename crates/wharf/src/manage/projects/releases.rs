//! A project's releases: the list, one release's page (its files), yank and un-yank, and
//! deleting a release or one file.

use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{page_of, project_path};
use crate::error::AppError;
use crate::manage::project_for;
use crate::packaging::permissions::Permission;
use crate::packaging::{self, Contents, Project};
use crate::simple::encode_segment;
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

#[derive(Clone, Debug, Serialize)]
struct ReleaseRow {
    version: String,
    created: i64,
    yanked: bool,
    yanked_reason: String,
    files: usize,
}

pub async fn releases(web: Web, Path(project): Path<String>) -> Page {
    let back = page_of(&project, "releases/");
    let (_, project) = project_for(&web, &project, Permission::ViewReleases, &back).await?;
    let contents = Contents::load(&web.state.db, &project.id)
        .await
        .or_page(&web)?;
    let rows: Vec<ReleaseRow> = contents
        .releases
        .iter()
        .rev()
        .map(|r| ReleaseRow {
            version: r.version.clone(),
            created: r.created,
            yanked: r.yanked,
            yanked_reason: r.yanked_reason.clone(),
            files: contents
                .files
                .iter()
                .filter(|f| f.release_id == r.id)
                .count(),
        })
        .collect();
    Ok(web.render(
        "manage_project_releases.html",
        context! { project => context! { name => project.name, normalized_name => project.normalized_name }, releases => rows },
    ))
}

async fn release_page(
    web: &Web,
    project: &Project,
    version: &str,
    status: StatusCode,
    errors: FormErrors,
) -> Page {
    let contents = Contents::load(&web.state.db, &project.id)
        .await
        .or_page(web)?;
    let Some(release) = contents.releases.iter().find(|r| r.version == version) else {
        return Err(web.error(AppError::new(
            StatusCode::NOT_FOUND,
            format!("{} has no release {version}.", project.name),
        )));
    };
    let files: Vec<_> = contents
        .files
        .iter()
        .filter(|f| f.release_id == release.id)
        .map(|f| context! { filename => f.filename.clone(), size => f.size, upload_time => f.upload_time, packagetype => f.packagetype.clone() })
        .collect();
    Ok(web.render_status(
        status,
        "manage_release.html",
        context! {
            project => context! { name => project.name.clone(), normalized_name => project.normalized_name.clone() },
            release => context! { version => release.version.clone(), yanked => release.yanked, yanked_reason => release.yanked_reason.clone(), created => release.created },
            files => files,
            errors => errors,
        },
    ))
}

pub async fn release(web: Web, Path((project, version)): Path<(String, String)>) -> Page {
    // The page holds the yank and delete forms: re-authentication comes before them.
    let back = page_of(&project, &format!("release/{}/", encode_segment(&version)));
    let (_, project) = project_for(&web, &project, Permission::ManageReleases, &back).await?;
    release_page(
        &web,
        &project,
        &version,
        StatusCode::OK,
        FormErrors::default(),
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct YankForm {
    yank_reason: String,
}

pub async fn yank(
    web: Web,
    Path((project, version)): Path<(String, String)>,
    Form(form): Form<YankForm>,
) -> Page {
    set_yanked(web, project, version, true, form.yank_reason).await
}

pub async fn unyank(web: Web, Path((project, version)): Path<(String, String)>) -> Page {
    set_yanked(web, project, version, false, String::new()).await
}

async fn set_yanked(
    web: Web,
    project: String,
    version: String,
    yanked: bool,
    reason: String,
) -> Page {
    let back = page_of(&project, &format!("release/{}/", encode_segment(&version)));
    let (session, project) = project_for(&web, &project, Permission::ManageReleases, &back).await?;
    let reason = reason.trim();
    if reason.chars().count() > 500 {
        return release_page(
            &web,
            &project,
            &version,
            StatusCode::BAD_REQUEST,
            FormErrors::one("yank_reason", "The reason must be at most 500 characters."),
        )
        .await;
    }
    let found = packaging::set_yanked(
        &web.state.db,
        &project,
        &version,
        yanked.then_some(reason),
        &web.actor(&session.user),
    )
    .await
    .or_page(&web)?;
    let message = if yanked {
        format!(
            "Yanked {} {version}: installers skip it unless it is pinned exactly.",
            project.name
        )
    } else {
        format!("{} {version} is no longer yanked.", project.name)
    };
    changed(
        &web,
        &project,
        found,
        format!("{} has no release {version}.", project.name),
        &format!("release/{}/", encode_segment(&version)),
        message,
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteReleaseForm {
    confirm_version: String,
}

pub async fn delete_release(
    web: Web,
    Path((project, version)): Path<(String, String)>,
    Form(form): Form<DeleteReleaseForm>,
) -> Page {
    let back = page_of(&project, &format!("release/{}/", encode_segment(&version)));
    let (session, project) = project_for(&web, &project, Permission::ManageReleases, &back).await?;
    if form.confirm_version.trim() != version {
        return release_page(
            &web,
            &project,
            &version,
            StatusCode::BAD_REQUEST,
            FormErrors::one(
                "confirm_version",
                format!("Type the version, {version}, to confirm: the release was not deleted."),
            ),
        )
        .await;
    }
    let found =
        packaging::delete_release(&web.state.db, &project, &version, &web.actor(&session.user))
            .await
            .or_page(&web)?;
    changed(
        &web,
        &project,
        found,
        format!("{} has no release {version}.", project.name),
        "releases/",
        format!("Deleted {} {version} and its files.", project.name),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteFileForm {
    filename: String,
    confirm_filename: String,
}

pub async fn delete_file(
    web: Web,
    Path((project, version)): Path<(String, String)>,
    Form(form): Form<DeleteFileForm>,
) -> Page {
    let back = page_of(&project, &format!("release/{}/", encode_segment(&version)));
    let (session, project) = project_for(&web, &project, Permission::ManageReleases, &back).await?;
    if form.confirm_filename.trim() != form.filename {
        return release_page(
            &web,
            &project,
            &version,
            StatusCode::BAD_REQUEST,
            FormErrors::one(
                &format!("confirm-file-{}", form.filename),
                format!(
                    "Type the file name, {}, to confirm: the file was not deleted.",
                    form.filename
                ),
            ),
        )
        .await;
    }
    let found = packaging::delete_file(
        &web.state.db,
        &project,
        &version,
        &form.filename,
        &web.actor(&session.user),
    )
    .await
    .or_page(&web)?;
    changed(
        &web,
        &project,
        found,
        format!("{} {version} has no file {}.", project.name, form.filename),
        &format!("release/{}/", encode_segment(&version)),
        format!(
            "Deleted {}. Its name can never be used again.",
            form.filename
        ),
    )
}

/// After a yank, unyank or deletion: not found when there was nothing to change (`missing`
/// says what), otherwise the project's pages are rebuilt and the user goes back to `to` (under
/// the project) with `done`.
fn changed(
    web: &Web,
    project: &Project,
    found: bool,
    missing: String,
    to: &str,
    done: String,
) -> Page {
    if !found {
        return Err(web.error(AppError::new(StatusCode::NOT_FOUND, missing)));
    }
    web.state.cache.invalidate_project(&project.normalized_name);
    Ok(web.redirect_with(&project_path(project, to), Flash::success(done)))
}

crate::site::template_value!(ReleaseRow);
