//! A project's collaborators: the page, inviting someone, changing a role, removing a
//! collaborator and withdrawing an invitation.

use axum::Form;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

use super::{page_of, project_path};
use crate::accounts;
use crate::manage::project_for;
use crate::packaging::permissions::Permission;
use crate::packaging::roles::{self, Collaborator, RoleError};
use crate::packaging::{Project, Role};
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

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
            now => web.now_micros(),
            errors => errors,
            invite_username => form.0,
            invite_role => form.1,
        },
    ))
}

pub async fn collaboration(web: Web, Path(project): Path<String>) -> Page {
    let back = page_of(&project, "collaboration/");
    let (_, project) = project_for(&web, &project, Permission::ManageCollaborators, &back).await?;
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
        project_for(&web, &project, Permission::ManageCollaborators, &back).await?;
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
        &web.actor(&session.user),
        &invitee,
        role,
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
            &web.meta, web.now_micros())
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
        project_for(&web, &project, Permission::ManageCollaborators, &back).await?;
    let target = collaborator(&web, &project, &form.user_id).await?;
    let Some(role) = Role::parse(&form.role) else {
        return Ok(web.redirect_with(
            &project_path(&project, "collaboration/"),
            Flash::error("Choose Owner or Maintainer."),
        ));
    };
    let result = roles::change_role(
        &web.state.db,
        &project,
        &web.actor(&session.user),
        &target,
        role,
    )
    .await;
    role_changed(&web, &back, result, |()| {
        format!(
            "{} is now {} of {}.",
            target.username,
            role.as_str(),
            project.name
        )
    })
}

pub async fn remove_role(
    web: Web,
    Path(project): Path<String>,
    Form(form): Form<RoleForm>,
) -> Page {
    let back = page_of(&project, "collaboration/");
    let (session, project) =
        project_for(&web, &project, Permission::ManageCollaborators, &back).await?;
    let target = collaborator(&web, &project, &form.user_id).await?;
    let result =
        roles::remove_role(&web.state.db, &project, &web.actor(&session.user), &target).await;
    role_changed(&web, &back, result, |()| {
        format!("Removed {} from {}.", target.username, project.name)
    })
}

pub async fn revoke_invitation(
    web: Web,
    Path(project): Path<String>,
    Form(form): Form<RoleForm>,
) -> Page {
    let back = page_of(&project, "collaboration/");
    let (session, project) =
        project_for(&web, &project, Permission::ManageCollaborators, &back).await?;
    let result = roles::revoke_invitation(
        &web.state.db,
        &project,
        &web.actor(&session.user),
        &form.invitation_id,
    )
    .await;
    role_changed(&web, &back, result, |username| {
        format!("Withdrew the invitation to {username}.")
    })
}

/// Back to the collaboration page with what was done, or with why it was refused; a database
/// failure is an error page.
fn role_changed<T>(
    web: &Web,
    back: &str,
    result: Result<T, RoleError>,
    done: impl FnOnce(T) -> String,
) -> Page {
    match result {
        Ok(value) => Ok(web.redirect_with(back, Flash::success(done(value)))),
        Err(RoleError::Database(e)) => Err::<Response, _>(e).or_page(web),
        Err(e) => Ok(web.redirect_with(back, Flash::error(e.to_string()))),
    }
}
