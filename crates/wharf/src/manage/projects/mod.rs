//! `/manage/projects/` (the user's projects and the invitations waiting for them) and each
//! project's management pages, one file per area: releases (yank, un-yank, delete a release
//! or a file), collaborators (invite, change role, remove), publishing (trusted publishers,
//! "only trusted publishers") and settings (2FA requirement, delete). Who may see and do
//! what is decided by `packaging::permissions`; every change is journalled and recorded.

mod collaborators;
mod publishing;
mod releases;
mod settings;

use axum::extract::Path;
use minijinja::context;
use wharf_packaging::name;

pub use collaborators::{
    InviteForm, RoleForm, change_role, collaboration, invite, remove_role, revoke_invitation,
};
pub use publishing::{
    RemovePublisherForm, TrustedOnlyForm, add_publisher, publishing, remove_publisher,
    set_trusted_only,
};
pub use releases::{
    DeleteFileForm, DeleteReleaseForm, YankForm, delete_file, delete_release, release, releases,
    unyank, yank,
};
pub use settings::{DeleteProjectForm, TwoFactorForm, delete_project, set_requires_2fa, settings};

use crate::accounts;
use crate::error::AppError;
use crate::packaging::Project;
use crate::packaging::roles::{self, Answer};
use crate::simple::encode_segment;
use crate::web::{Flash, OrPage, Page, Web};

pub async fn list(web: Web) -> Page {
    let session = web.require_session()?.clone();
    let projects = roles::projects_of_user(&web.state.db, &session.user.id)
        .await
        .or_page(&web)?;
    let invitations =
        roles::invitations_for_user(&web.state.db, &session.user.id, web.now_micros())
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
        match roles::answer_invitation(&web.state.db, &web.actor(&session.user), &id, answer).await
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
