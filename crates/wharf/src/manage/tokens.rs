//! `/manage/account/tokens/`: create API tokens (the whole account, or one or several
//! projects; an optional expiry), see them with their last use and usage trail, replace one
//! (a new secret, the old one kept for a grace period), delete them.
//! `/manage/project/<name>/tokens/`: every token that can upload to a project.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::accounts::views::recheck;
use crate::accounts::{self, User};
use crate::error::AppError;
use crate::packaging::permissions::{self, Denied, Permission, Via};
use crate::packaging::{self, Project};
use crate::tokens::lifecycle::Grace;
use crate::tokens::{self, Removal, TokenError, TokenScope, leaks};
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

const PAGE: &str = "/manage/account/tokens/";

/// The expiries offered, in days; "" is never.
const EXPIRIES: &[(&str, &str)] = &[
    ("", "Never"),
    ("7", "In 7 days"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In a year"),
];

#[derive(Clone, Debug, Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
}

crate::site::template_value!(Choice);

async fn page_with(
    web: &Web,
    user: &User,
    status: StatusCode,
    errors: FormErrors,
    form: &CreateForm,
) -> Page {
    let listed = tokens::list_for_user(&web.state.db, &user.id)
        .await
        .or_page(web)?;
    let projects = packaging::roles::projects_of_user(&web.state.db, &user.id)
        .await
        .or_page(web)?;
    let verified = accounts::has_verified_primary_email(&web.state.db, &user.id)
        .await
        .unwrap_or(false);
    let expiries: Vec<Choice> = EXPIRIES
        .iter()
        .map(|(value, label)| Choice { value, label })
        .collect();
    Ok(web.render_status(
        status,
        "manage_tokens.html",
        context! {
            tokens => listed,
            projects => projects,
            verified => verified,
            expiries => expiries,
            errors => errors,
            form => context! { name => form.name.clone(), scope => form.scope.clone(), selected => form.projects.clone(), expires => form.expires.clone(), kind => form.kind.clone() },
            now => web.now_micros(),
        },
    ))
}

pub async fn page(web: Web) -> Page {
    let session = web.require_recent_auth(PAGE)?.clone();
    page_with(
        &web,
        &session.user,
        StatusCode::OK,
        FormErrors::default(),
        &CreateForm::default(),
    )
    .await
}

/// The create form. `projects` repeats, one field per checked project.
#[derive(Debug, Default)]
pub struct CreateForm {
    name: String,
    /// `account` or `projects`.
    scope: String,
    projects: Vec<String>,
    /// Days, or empty for never.
    expires: String,
    /// `upload` (the default) or `read`: a read-only token.
    kind: String,
}

impl CreateForm {
    /// Read by hand: the form repeats `projects`, which serde's urlencoded forms cannot hold.
    fn parse(body: &[u8]) -> CreateForm {
        let mut form = CreateForm::default();
        for (name, value) in form_urlencoded::parse(body) {
            let value = value.into_owned();
            match name.as_ref() {
                "name" => form.name = value,
                "scope" => form.scope = value,
                "projects" => form.projects.push(value),
                "expires" => form.expires = value,
                "kind" => form.kind = value,
                _ => {}
            }
        }
        form
    }
}

pub async fn create(web: Web, body: Bytes) -> Page {
    let form = CreateForm::parse(&body);
    let session = web.require_recent_auth(PAGE)?.clone();
    let user = &session.user;
    let refuse = |field: &str, message: &str| {
        page_with(
            &web,
            user,
            StatusCode::BAD_REQUEST,
            FormErrors::one(field, message),
            &form,
        )
    };
    if !accounts::has_verified_primary_email(&web.state.db, &user.id)
        .await
        .or_page(&web)?
    {
        return refuse("name", "Verify your e-mail address to create an API token.").await;
    }
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return refuse("name", "Give the token a name of 1 to 100 characters.").await;
    }
    let mut projects: Vec<Project> = Vec::new();
    if form.scope == "projects" {
        if form.projects.is_empty() {
            return refuse(
                "scope-projects",
                "Choose at least one project, or the whole account.",
            )
            .await;
        }
        match uploadable(&web, user, &form.projects).await? {
            Ok(found) => projects = found,
            Err(message) => return refuse("scope-projects", &message).await,
        }
    } else if form.scope != "account" {
        return refuse("scope-account", "Choose the token's scope.").await;
    }
    let read_only = match form.kind.as_str() {
        "" | "upload" => false,
        "read" => true,
        _ => return refuse("kind", "Choose what the token may do.").await,
    };
    let expires_in = match form.expires.as_str() {
        "" => None,
        days => match days.parse::<i64>() {
            Ok(days) if EXPIRIES.iter().any(|(v, _)| *v == form.expires) => Some(days * 86_400),
            _ => return refuse("expires", "Choose one of the expiries offered.").await,
        },
    };
    let scope = TokenScope {
        projects: &projects,
        expires_in,
        read_only,
    };
    let location = web.state.settings.token_location();
    let secret = match tokens::create(
        &tokens::Issuer::of(&web.state, &location),
        user,
        name,
        &scope,
        &web.meta,
        web.now_micros(),
    )
    .await
    {
        Ok(secret) => secret,
        Err(TokenError::DuplicateDescription(_)) => {
            return refuse("name", "API token name already in use: choose another one.").await;
        }
        Err(TokenError::InvalidDescription) => {
            return refuse("name", "Give the token a name of 1 to 100 characters.").await;
        }
        Err(TokenError::InvalidLifetime) => {
            return refuse("expires", "Choose one of the expiries offered.").await;
        }
        Err(TokenError::Gone) => return Err(web.error(AppError::not_found())),
        Err(TokenError::Database(e)) => return Err(e).or_page(&web),
    };
    let names: Vec<String> = projects.iter().map(|p| p.normalized_name.clone()).collect();
    let expires = expires_in.map(|s| shown_time(web.now_micros() + s * 1_000_000));
    tokens::notify_created(&web.state, &user.id, name, &web.meta).await;
    let shown = Shown {
        secret: &secret,
        name,
        projects: names,
        expires,
        read_only,
    };
    Ok(shown_once(&web, shown, None))
}

/// A new token, for the page that shows it once.
struct Shown<'a> {
    secret: &'a str,
    name: &'a str,
    projects: Vec<String>,
    /// As shown: `2026-12-02 10:00:00 UTC`.
    expires: Option<String>,
    read_only: bool,
}

/// The page with the new token's secret, in the answer to the POST and never again (pages are
/// `no-store`); `replaced` says what became of the token it replaces.
fn shown_once(web: &Web, shown: Shown<'_>, replaced: Option<minijinja::Value>) -> Response {
    let base_url = web.state.settings.base_url();
    web.render(
        "token_created.html",
        context! {
            token => shown.secret,
            name => shown.name,
            projects => shown.projects,
            expires => shown.expires,
            read_only => shown.read_only,
            replaced => replaced,
            simple_url => format!("{base_url}/simple/"),
            index_url => index_url_with(&base_url, shown.secret),
            repository_url => format!("{base_url}/legacy/"),
        },
    )
}

/// As the pages show a time: `2026-12-02 10:00:00 UTC`.
fn shown_time(micros: i64) -> String {
    crate::clock::iso8601_seconds(micros).replace('T', " ") + " UTC"
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReplaceForm {
    /// How long the old token keeps working: `none`, `1h` or `24h`.
    grace: String,
}

/// "Replace this token": a new token with the same name, scope and lifetime, shown once; the
/// old one works for the grace period chosen, or is revoked at once. Asks for a recent
/// password, as creating a token does.
pub async fn replace(
    web: Web,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<ReplaceForm>,
) -> Page {
    let back = format!("{PAGE}{}/", crate::simple::encode_segment(&id));
    let session = web.require_recent_auth(&back)?.clone();
    let user = &session.user;
    let Some(token) = tokens::find(&web.state.db, &id)
        .await
        .or_page(&web)?
        .filter(|token| token.user_id == user.id)
    else {
        return Ok(web.redirect_with(PAGE, Flash::error("API Token does not exist.")));
    };
    let Some(grace) = Grace::parse(&form.grace) else {
        return Ok(web.redirect_with(
            &back,
            Flash::error("Choose how long the old token keeps working."),
        ));
    };
    if !accounts::has_verified_primary_email(&web.state.db, &user.id)
        .await
        .or_page(&web)?
    {
        return Ok(web.redirect_with(
            &back,
            Flash::error("Verify your e-mail address to create an API token."),
        ));
    }
    // The same projects, by id, that the owner may still upload to.
    let Some(scoped) = tokens::lifecycle::projects_of(&web.state.db, &token)
        .await
        .or_page(&web)?
    else {
        return Ok(web.redirect_with(
            &back,
            Flash::error("A project this token is limited to no longer exists: create a new token instead. Nothing was changed."),
        ));
    };
    let names: Vec<String> = scoped.iter().map(|(_, name)| name.clone()).collect();
    let projects = match uploadable(&web, user, &names).await? {
        Ok(projects)
            if projects
                .iter()
                .map(|p| &p.id)
                .eq(scoped.iter().map(|(id, _)| id)) =>
        {
            projects
        }
        Ok(_) => {
            return Ok(web.redirect_with(
                &back,
                Flash::error("A project this token is limited to no longer exists: create a new token instead. Nothing was changed."),
            ));
        }
        Err(message) => {
            return Ok(web.redirect_with(
                &back,
                Flash::error(format!("{message} Nothing was changed.")),
            ));
        }
    };
    let location = web.state.settings.token_location();
    let rotated = tokens::lifecycle::rotate(
        (&web.state).into(),
        &location,
        user,
        &token,
        &projects,
        grace,
        &web.meta,
        web.now_micros(),
    )
    .await;
    let rotation = match rotated {
        Ok(rotation) => rotation,
        Err(TokenError::Database(e)) => return Err(e).or_page(&web),
        Err(TokenError::Gone) => {
            return Ok(web.redirect_with(PAGE, Flash::error("API Token does not exist.")));
        }
        Err(other) => {
            return Ok(web.redirect_with(
                &back,
                Flash::error(format!("The token cannot be replaced: {other}.")),
            ));
        }
    };
    let shown = Shown {
        secret: &rotation.secret,
        name: &token.description,
        projects: projects.iter().map(|p| p.normalized_name.clone()).collect(),
        expires: rotation.expires.map(shown_time),
        read_only: token.read_only,
    };
    let replaced = context! {
        until => rotation.old_until.map(shown_time),
        old_name => rotation.old_description,
    };
    Ok(shown_once(&web, shown, Some(replaced)))
}

/// The projects named (each once), when `user` may upload to every one of them now (the
/// token pages asked for a recent password); else the sentence that says which not.
async fn uploadable(
    web: &Web,
    user: &User,
    names: &[String],
) -> Result<Result<Vec<Project>, String>, Response> {
    let mut projects: Vec<Project> = Vec::new();
    for name in names {
        let normalized = wharf_packaging::name::normalize(name);
        let decided = permissions::authorize(
            &web.state.db,
            web.state.settings.require_2fa,
            user,
            Via::Session { fresh: true },
            &normalized,
            Permission::Upload,
        )
        .await
        .or_page(web)?;
        let message = match decided {
            Ok(project) => {
                if !projects.iter().any(|p| p.id == project.id) {
                    projects.push(project);
                }
                continue;
            }
            Err(refusal) => match refusal.reason {
                Denied::NotFound => format!("There is no project named {name}."),
                Denied::Needs2fa => format!(
                    "{name} requires two-factor authentication: set it up for your account first."
                ),
                _ => format!("You are not a collaborator on {name}."),
            },
        };
        return Ok(Err(message));
    }
    Ok(Ok(projects))
}

/// The Simple API's URL with the token in it, as pip takes it (`--index-url`).
fn index_url_with(base_url: &str, token: &str) -> String {
    let simple = format!("{base_url}/simple/");
    let Ok(mut url) = url::Url::parse(&simple) else {
        return simple;
    };
    if url.set_username("__token__").is_err() || url.set_password(Some(token)).is_err() {
        return simple;
    }
    url.to_string()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeleteForm {
    token_id: String,
    confirm_password: String,
}

pub async fn delete(web: Web, axum::Form(form): axum::Form<DeleteForm>) -> Page {
    let session = web.require_recent_auth(PAGE)?.clone();
    let user = &session.user;
    let Some(token) = tokens::find(&web.state.db, &form.token_id)
        .await
        .or_page(&web)?
        .filter(|token| token.user_id == user.id)
    else {
        return Ok(web.redirect_with(PAGE, Flash::error("API Token does not exist.")));
    };
    if !recheck(&web, user, &form.confirm_password).await? {
        return page_with(
            &web,
            user,
            StatusCode::BAD_REQUEST,
            FormErrors::one(
                &format!("confirm-{}", token.id),
                "The password is incorrect: the token was not deleted.",
            ),
            &CreateForm::default(),
        )
        .await;
    }
    tokens::delete(
        &web.state,
        &token,
        Removal::ByOwner,
        &web.meta,
        web.now_micros(),
    )
    .await
    .or_page(&web)?;
    leaks::notify(&web.state, &token, "token-deleted", context! {}, &web.meta).await;
    Ok(web.redirect_with(
        PAGE,
        Flash::success(format!("Deleted the API token \"{}\".", token.description)),
    ))
}

crate::site::template_value!(tokens::uses::Use);

/// One token's usage trail: its successful and refused uses, newest first (warehouse#6441).
pub async fn detail(web: Web, Path(id): Path<String>) -> Page {
    let session = web.require_recent_auth(PAGE)?.clone();
    let Some(token) = tokens::find(&web.state.db, &id)
        .await
        .or_page(&web)?
        .filter(|token| token.user_id == session.user.id)
    else {
        return Err(web.error(AppError::not_found()));
    };
    let uses = tokens::uses::uses(&web.state.db, &session.user.id, &token.id)
        .await
        .or_page(&web)?;
    Ok(web.render(
        "manage_token.html",
        context! { token => token, uses => uses },
    ))
}

/// Every token that can upload to a project, for its Owners (warehouse#6263).
pub async fn for_project(web: Web, Path(project): Path<String>) -> Page {
    let back = format!(
        "/manage/project/{}/tokens/",
        crate::simple::encode_segment(&wharf_packaging::name::normalize(&project))
    );
    let (_, project) = super::project_for(&web, &project, Permission::ViewTokens, &back).await?;
    let list = tokens::for_project(&web.state.db, &project)
        .await
        .or_page(&web)?;
    Ok(web.render(
        "manage_project_tokens.html",
        context! { project => context! { name => project.name.clone(), normalized_name => project.normalized_name.clone() }, tokens => list, now => web.now_micros() },
    ))
}
