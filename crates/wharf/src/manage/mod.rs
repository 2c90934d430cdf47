//! The management pages of a signed-in user: their account, and the projects they own.

pub mod account;
pub mod history;
pub mod projects;
pub mod publishing;
pub mod tokens;

use axum::http::StatusCode;
use axum::response::Response;

use crate::accounts::session::Session;
use crate::error::AppError;
use crate::packaging::Project;
use crate::packaging::permissions::{self, Denied, Permission, Via};
use crate::web::{OrPage, Web};

/// The signed-in user and the project `name`, when the user may do `permission` on it (the
/// decision is [`permissions::authorize`]'s); otherwise the answer that says why not: the
/// sign-in page, 404, 403, or the password page that comes back to `back` (the page that
/// holds the action's form).
pub(crate) async fn project_for(
    web: &Web,
    name: &str,
    permission: Permission,
    back: &str,
) -> Result<(Session, Project), Response> {
    let session = web.require_session()?.clone();
    let fresh = session.recently_authenticated(web.now_micros(), web.state.settings.reauth_secs);
    let decided = permissions::authorize(
        &web.state.db,
        web.state.settings.require_2fa,
        &session.user,
        Via::Session { fresh },
        &wharf_packaging::name::normalize(name),
        permission,
    )
    .await
    .or_page(web)?;
    let (denied, shown) = match decided {
        Ok(project) => return Ok((session, project)),
        // The name as the project spells it (the path may be any spelling).
        Err(refusal) => (
            refusal.reason,
            refusal.project.map_or_else(|| name.to_owned(), |p| p.name),
        ),
    };
    let what = permission.describe();
    Err(match denied {
        Denied::NotFound => web.error(AppError::new(
            StatusCode::NOT_FOUND,
            format!("There is no project named \"{name}\" on this index."),
        )),
        Denied::NoRole => web.error(AppError::forbidden(format!(
            "You are not a collaborator on {shown}, so you cannot {what}."
        ))),
        Denied::NeedsRole(_) => web.error(AppError::forbidden(format!(
            "Only Owners of {shown} can {what}; you are a Maintainer, so you may upload to it."
        ))),
        Denied::Needs2fa => web.error(AppError::forbidden(format!(
            "{shown} requires its Owners and Maintainers to use two-factor authentication. \
             Set it up in your account settings first: /manage/account/two-factor/"
        ))),
        // The session is stale, so this is the password page (time only moves forward).
        Denied::NeedsReauth => match web.require_recent_auth(back) {
            Err(response) => response,
            Ok(_) => web.error(AppError::forbidden(
                "Confirm your password, then try again.",
            )),
        },
    })
}
