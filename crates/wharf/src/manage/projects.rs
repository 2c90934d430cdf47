//! `/manage/projects/` and each project's management pages: releases (yank, un-yank, delete
//! a release or a file), collaborators (invite, change role, remove) and settings (delete).
//! Who may see and do what is decided by `packaging::permissions`; every change is journalled
//! and recorded.

use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::{Deserialize, Serialize};
use wharf_packaging::name;

use crate::accounts;
use crate::error::AppError;
use crate::packaging::permissions::Permission;
use crate::packaging::roles::{self, Answer, Collaborator, RoleError};
use crate::packaging::{self, Contents, Project, Role};
use crate::simple::encode_segment;
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

pub async fn list(web: Web) -> Page {
    let session = web.require_session()?.clone();
    let projects = roles::projects_of_user(&web.state.db, &session.user.id)
        .await
        .or_page(&web)?;
    let invitations = roles::invitations_for_user(&web.state.db, &session.user.id, web.now())
        .await
        .or_page(&web)?;
    let verified = accounts::has_verified_primary_email(&web.state.db, &session.user.id)
        .await
        .unwrap_or(false);
    Ok(web.render(
        "manage_projects.html",
        context! { projects => projects, invitations => invitations, verified => verified },
    ))
}

pub async fn answer_invitation(web: Web, Path((id, answer)): Path<(String, String)>) -> Page {
    let session = web.require_session()?.clone();
    let answer = match answer.as_str() {
        "accept" => Answer::Accept,
        "decline" => Answer::Decline,
        _ => return Err(web.error(AppError::not_found())),
    };
    Ok(
        match roles::answer_invitation(
            &web.state.db,
            &session.user,
            &id,
            answer,
            &web.meta,
            web.now(),
        )
        .await
        {
            Ok(project) => {
                web.state
                    .cache
                    .invalidate_project(&name::normalize(&project));
                let message = match answer {
                    Answer::Accept => format!("You are now a collaborator on {project}."),
                    Answer::Decline => format!("You declined the invitation to {project}."),
                };
                web.redirect_with("/manage/projects/", Flash::success(message))
            }
            Err(e) => web.redirect_with("/manage/projects/", Flash::error(e.to_string())),
        },
    )
}

fn project_path(project: &Project, rest: &str) -> String {
    format!(
        "/manage/project/{}/{rest}",
        encode_segment(&project.normalized_name)
    )
}

/// A management page of the project named `name` (as given in the path).
fn page_of(name: &str, rest: &str) -> String {
    format!(
        "/manage/project/{}/{rest}",
        encode_segment(&name::normalize(name))
    )
}

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
    let (_, project) = super::project_for(&web, &project, Permission::ViewReleases, &back).await?;
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
    let (_, project) =
        super::project_for(&web, &project, Permission::ManageReleases, &back).await?;
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
    let (session, project) =
        super::project_for(&web, &project, Permission::ManageReleases, &back).await?;
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
        &session.user,
        &web.meta,
        web.now(),
    )
    .await
    .or_page(&web)?;
    if !found {
        return Err(web.error(AppError::new(
            StatusCode::NOT_FOUND,
            format!("{} has no release {version}.", project.name),
        )));
    }
    web.state.cache.invalidate_project(&project.normalized_name);
    let message = if yanked {
        format!(
            "Yanked {} {version}: installers skip it unless it is pinned exactly.",
            project.name
        )
    } else {
        format!("{} {version} is no longer yanked.", project.name)
    };
    Ok(web.redirect_with(
        &project_path(&project, &format!("release/{}/", encode_segment(&version))),
        Flash::success(message),
    ))
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
    let (session, project) =
        super::project_for(&web, &project, Permission::ManageReleases, &back).await?;
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
    let found = packaging::delete_release(
        &web.state.db,
        &project,
        &version,
        &session.user,
        &web.meta,
        web.now(),
    )
    .await
    .or_page(&web)?;
    if !found {
        return Err(web.error(AppError::new(
            StatusCode::NOT_FOUND,
            format!("{} has no release {version}.", project.name),
        )));
    }
    web.state.cache.invalidate_project(&project.normalized_name);
    Ok(web.redirect_with(
        &project_path(&project, "releases/"),
        Flash::success(format!("Deleted {} {version} and its files.", project.name)),
    ))
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
    let (session, project) =
        super::project_for(&web, &project, Permission::ManageReleases, &back).await?;
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
        &session.user,
        &web.meta,
        web.now(),
    )
    .await
    .or_page(&web)?;
    if !found {
        return Err(web.error(AppError::new(
            StatusCode::NOT_FOUND,
            format!("{} {version} has no file {}.", project.name, form.filename),
        )));
    }
    web.state.cache.invalidate_project(&project.normalized_name);
    Ok(web.redirect_with(
        &project_path(&project, &format!("release/{}/", encode_segment(&version))),
        Flash::success(format!(
            "Deleted {}. Its name can never be used again.",
            form.filename
        )),
    ))
}

// ---- collaborators ----------------------------------------------------------------------

async fn collaboration_page(
    web: &Web,
    project: &Project,
    status: StatusCode,
    errors: FormErrors,
    form: (&str, &str),
) -> Page {
    let collaborators = roles::collaborators(&web.state.db, &project.id)
        .await
        .or_page(web)?;
    let invitations = roles::invitations_for_project(&web.state.db, &project.id)
        .await
        .or_page(web)?;
    Ok(web.render_status(
        status,
        "manage_collaborators.html",
        context! {
            project => context! { name => project.name.clone(), normalized_name => project.normalized_name.clone() },
            collaborators => collaborators,
            invitations => invitations,
            now => web.now(),
            errors => errors,
            invite_username => form.0,
            invite_role => form.1,
        },
    ))
}

pub async fn collaboration(web: Web, Path(project): Path<String>) -> Page {
    let back = page_of(&project, "collaboration/");
    let (_, project) =
        super::project_for(&web, &project, Permission::ManageCollaborators, &back).await?;
    collaboration_page(
        &web,
        &project,
        StatusCode::OK,
        FormErrors::default(),
        ("", "Maintainer"),
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InviteForm {
    username: String,
    role: String,
}

pub async fn invite(web: Web, Path(project): Path<String>, Form(form): Form<InviteForm>) -> Page {
    let back = page_of(&project, "collaboration/");
    let (session, project) =
        super::project_for(&web, &project, Permission::ManageCollaborators, &back).await?;
    let username = form.username.trim();
    let refuse = |message: String| {
        collaboration_page(
            &web,
            &project,
            StatusCode::BAD_REQUEST,
            FormErrors::one("username", message),
            (username, &form.role),
        )
    };
    let Some(role) = Role::parse(&form.role) else {
        return collaboration_page(
            &web,
            &project,
            StatusCode::BAD_REQUEST,
            FormErrors::one("role", "Choose Owner or Maintainer."),
            (username, "Maintainer"),
        )
        .await;
    };
    if username.is_empty() || username.chars().count() > 50 {
        return refuse("Enter the username of the person to invite.".to_owned()).await;
    }
    let Some(invitee) = accounts::find_by_username(&web.state.db, username)
        .await
        .or_page(&web)?
    else {
        return refuse(format!("There is no user named \"{username}\".")).await;
    };
    let email = match accounts::primary_email(&web.state.db, &invitee.id)
        .await
        .or_page(&web)?
    {
        Some(email) if email.verified => email.email,
        _ => {
            return refuse(format!(
                "{} has no verified primary e-mail address, so they cannot be invited yet.",
                invitee.username
            ))
            .await;
        }
    };
    let invitation = match roles::invite(
        &web.state.db,
        &project,
        &session.user,
        &invitee,
        role,
        &web.meta,
        web.now(),
    )
    .await
    {
        Ok(invitation) => invitation,
        Err(RoleError::Database(e)) => return Err(e).or_page(&web),
        Err(e) => return refuse(e.to_string()).await,
    };
    web.state
        .mailer
        .notify(&web.state.db, (&invitee.id, &email), "role-invitation",
            context! {
                username => invitee.username.clone(), inviter => session.user.username.clone(),
                project => project.name.clone(), role => role.as_str(),
                expires => crate::clock::iso8601_seconds(invitation.expires).replace('T', " ") + " UTC",
            },
            &web.meta, web.now())
        .await;
    Ok(web.redirect_with(
        &project_path(&project, "collaboration/"),
        Flash::success(format!(
            "Invited {} to be {} of {}. The invitation lasts 7 days.",
            invitee.username,
            role.as_str(),
            project.name
        )),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoleForm {
    user_id: String,
    role: String,
    invitation_id: String,
}

async fn collaborator(
    web: &Web,
    project: &Project,
    user_id: &str,
) -> Result<Collaborator, Response> {
    let list = roles::collaborators(&web.state.db, &project.id)
        .await
        .or_page(web)?;
    list.into_iter()
        .find(|c| c.user_id == user_id)
        .ok_or_else(|| {
            web.redirect_with(
                &project_path(project, "collaboration/"),
                Flash::error("That person is not a collaborator on this project."),
            )
        })
}

pub async fn change_role(
    web: Web,
    Path(project): Path<String>,
    Form(form): Form<RoleForm>,
) -> Page {
    let back = page_of(&project, "collaboration/");
    let (session, project) =
        super::project_for(&web, &project, Permission::ManageCollaborators, &back).await?;
    let target = collaborator(&web, &project, &form.user_id).await?;
    let Some(role) = Role::parse(&form.role) else {
        return Ok(web.redirect_with(
            &project_path(&project, "collaboration/"),
            Flash::error("Choose Owner or Maintainer."),
        ));
    };
    Ok(
        match roles::change_role(
            &web.state.db,
            &project,
            &session.user,
            &target,
            role,
            &web.meta,
            web.now(),
        )
        .await
        {
            Ok(()) => web.redirect_with(
                &back,
                Flash::success(format!(
                    "{} is now {} of {}.",
                    target.username,
                    role.as_str(),
                    project.name
                )),
            ),
            Err(RoleError::Database(e)) => return Err(e).or_page(&web),
            Err(e) => web.redirect_with(&back, Flash::error(e.to_string())),
        },
    )
}

pub async fn remove_role(
    web: Web,
    Path(project): Path<String>,
    Form(form): Form<RoleForm>,
) -> Page {
    let back = page_of(&project, "collaboration/");
    let (session, project) =
        super::project_for(&web, &project, Permission::ManageCollaborators, &back).await?;
    let target = collaborator(&web, &project, &form.user_id).await?;
    Ok(
        match roles::remove_role(
            &web.state.db,
            &project,
            &session.user,
            &target,
            &web.meta,
            web.now(),
        )
        .await
        {
            Ok(()) => web.redirect_with(
                &back,
                Flash::success(format!(
                    "Removed {} from {}.",
                    target.username, project.name
                )),
            ),
            Err(RoleError::Database(e)) => return Err(e).or_page(&web),
            Err(e) => web.redirect_with(&back, Flash::error(e.to_string())),
        },
    )
}

pub async fn revoke_invitation(
    web: Web,
    Path(project): Path<String>,
    Form(form): Form<RoleForm>,
) -> Page {
    let back = page_of(&project, "collaboration/");
    let (session, project) =
        super::project_for(&web, &project, Permission::ManageCollaborators, &back).await?;
    Ok(
        match roles::revoke_invitation(
            &web.state.db,
            &project,
            &session.user,
            &form.invitation_id,
            &web.meta,
            web.now(),
        )
        .await
        {
            Ok(username) => web.redirect_with(
                &back,
                Flash::success(format!("Withdrew the invitation to {username}.")),
            ),
            Err(RoleError::Database(e)) => return Err(e).or_page(&web),
            Err(e) => web.redirect_with(&back, Flash::error(e.to_string())),
        },
    )
}

// ---- settings -------------------------------------------------------------------------------

pub async fn settings(web: Web, Path(project): Path<String>) -> Page {
    let back = page_of(&project, "settings/");
    let (_, project) =
        super::project_for(&web, &project, Permission::ManageSettings, &back).await?;
    settings_page(&web, &project, StatusCode::OK, FormErrors::default()).await
}

async fn settings_page(
    web: &Web,
    project: &Project,
    status: StatusCode,
    errors: FormErrors,
) -> Page {
    let requires = crate::twofactor::project_requires(&web.state.db, &project.id)
        .await
        .or_page(web)?;
    Ok(web.render_status(
        status,
        "manage_project_settings.html",
        context! {
            project => context! { name => project.name.clone(), normalized_name => project.normalized_name.clone() },
            requires_2fa => requires,
            errors => errors,
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TwoFactorForm {
    require: String,
}

/// Turns "Owners and Maintainers must use 2FA" on or off.
pub async fn set_requires_2fa(
    web: Web,
    Path(project): Path<String>,
    Form(form): Form<TwoFactorForm>,
) -> Page {
    let back = page_of(&project, "settings/");
    let (session, project) =
        super::project_for(&web, &project, Permission::ManageSettings, &back).await?;
    let enable = form.require == "yes";
    if enable
        && !crate::twofactor::methods(&web.state.db, &session.user.id)
            .await
            .or_page(&web)?
            .any()
    {
        return Ok(web.redirect_with(
            &back,
            Flash::error(
                "Set up two-factor authentication for your own account before you require it of others.",
            ),
        ));
    }
    packaging::set_owners_require_2fa(
        &web.state.db,
        &project,
        enable,
        &session.user,
        &web.meta,
        web.now(),
    )
    .await
    .or_page(&web)?;
    let message = if enable {
        format!(
            "Owners and Maintainers of {} must now use two-factor authentication to manage it and upload to it.",
            project.name
        )
    } else {
        format!(
            "{} no longer requires two-factor authentication.",
            project.name
        )
    };
    Ok(web.redirect_with(&back, Flash::success(message)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteProjectForm {
    confirm_project_name: String,
}

pub async fn delete_project(
    web: Web,
    Path(project): Path<String>,
    Form(form): Form<DeleteProjectForm>,
) -> Page {
    let back = page_of(&project, "settings/");
    let (session, project) =
        super::project_for(&web, &project, Permission::DeleteProject, &back).await?;
    if name::normalize(form.confirm_project_name.trim()) != project.normalized_name {
        let message = format!(
            "Type the project name, {}, to confirm: the project was not deleted.",
            project.name
        );
        return settings_page(
            &web,
            &project,
            StatusCode::BAD_REQUEST,
            FormErrors::one("confirm_project_name", message),
        )
        .await;
    }
    packaging::delete_project(&web.state.db, &project, &session.user, &web.meta, web.now())
        .await
        .or_page(&web)?;
    web.state.cache.invalidate_project(&project.normalized_name);
    Ok(web.redirect_with(
        "/manage/projects/",
        Flash::success(format!("Deleted the project {}.", project.name)),
    ))
}

crate::web::template_value!(ReleaseRow);
