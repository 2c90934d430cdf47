//! `/admin/users/`: the accounts (searchable, paged), a page per account with its projects,
//! second factors, tokens (never their secrets) and recent events, and the admin actions of
//! `admin::actions` on it. Every action asks for the password again after `reauth_secs`.

use axum::Form;
use axum::extract::{Path, Query};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

use super::actions::{self, AdminActor, AdminError};
use super::require_admin;
use crate::accounts::directory::{self, UserQuery};
use crate::accounts::{self, User};
use crate::error::AppError;
use crate::events::query::{self, Filter, Sort};
use crate::web::{Flash, OrPage, Page, Web};

const PER_PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    q: String,
    admins: String,
    disabled: String,
    page: Option<i64>,
}

pub async fn list(web: Web, Query(form): Query<ListQuery>) -> Page {
    require_admin(&web)?;
    let search: String = form.q.trim().chars().take(100).collect();
    let query = UserQuery {
        search: search.clone(),
        admins_only: !form.admins.is_empty(),
        disabled_only: !form.disabled.is_empty(),
    };
    let page = form.page.unwrap_or(1).max(1);
    let (users, total) = directory::list(&web.state.db, &query, PER_PAGE, (page - 1) * PER_PAGE)
        .await
        .or_page(&web)?;
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    let rows: Vec<_> = users
        .iter()
        .map(|u| {
            context! {
                user => u.clone(),
                two_factor => u.two_factor_methods(),
                flags => u.flags(),
            }
        })
        .collect();
    let filters: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("q", search.as_str()),
            ("admins", form.admins.as_str()),
            ("disabled", form.disabled.as_str()),
        ])
        .finish();
    Ok(web.render(
        "admin_users.html",
        context! {
            users => rows,
            total => total,
            page => page,
            pages => pages,
            q => search,
            admins => query.admins_only,
            disabled => query.disabled_only,
            filters => filters,
        },
    ))
}

fn user_page(username: &str) -> String {
    format!("/admin/users/{}/", crate::simple::encode_segment(username))
}

pub async fn show(web: Web, Path(username): Path<String>) -> Page {
    require_admin(&web)?;
    let db = &web.state.db;
    let Some(user) = directory::summary(db, &username).await.or_page(&web)? else {
        return Err(web.error(AppError::new(
            axum::http::StatusCode::NOT_FOUND,
            format!("There is no user named \"{username}\"."),
        )));
    };
    let emails = accounts::emails(db, &user.id).await.or_page(&web)?;
    let projects = crate::packaging::roles::projects_of_user(db, &user.id)
        .await
        .or_page(&web)?;
    let tokens = crate::tokens::list_for_user(db, &user.id)
        .await
        .or_page(&web)?;
    let sessions = directory::session_count(db, &user.id, web.now_micros())
        .await
        .or_page(&web)?;
    let filter = Filter {
        user_id: Some(user.id.clone()),
        ..Filter::default()
    };
    let (events, events_total) = query::list(db, &filter, Sort::parse(""), 1, 20)
        .await
        .or_page(&web)?;
    let own = web.session.as_ref().is_some_and(|s| s.user.id == user.id);
    Ok(web.render(
        "admin_user.html",
        context! {
            account => user.clone(),
            two_factor => user.two_factor_methods(),
            flags => user.flags(),
            emails => emails,
            projects => projects,
            tokens => tokens,
            sessions => sessions,
            events => events,
            events_total => events_total,
            own => own,
            path => user_page(&user.username),
        },
    ))
}

/// The signed-in admin for an action, recently authenticated. (Where `require_2fa` is on,
/// `Web` has already sent an admin without a second factor to set one up.)
pub(super) async fn acting_admin(web: &Web, back_to: &str) -> Result<User, Response> {
    require_admin(web)?;
    Ok(web.require_recent_auth(back_to)?.user.clone())
}

/// What an action's refusal or failure shows: the page of the user, with the reason.
pub(super) fn refused(web: &Web, back_to: &str, error: AdminError) -> Page {
    match error {
        AdminError::Database(e) => Err(e).or_page(web),
        other => Ok(web.redirect_with(back_to, Flash::error(sentence(&other.to_string())))),
    }
}

/// The actions' one-line errors, as a sentence for a page.
pub(super) fn sentence(line: &str) -> String {
    let mut chars = line.chars();
    let first: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    format!("{first}{}.", chars.as_str())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActionForm {
    /// `grant-admin`, `revoke-admin`, `disable`, `enable` or `reset-2fa`.
    action: String,
}

pub async fn act(web: Web, Path(username): Path<String>, Form(form): Form<ActionForm>) -> Page {
    let back_to = user_page(&username);
    let admin = acting_admin(&web, &back_to).await?;
    let actor = AdminActor {
        admin: Some(&admin),
        meta: &web.meta,
        now_micros: web.now_micros(),
    };
    let deps = (&web.state).into();
    let done = match form.action.as_str() {
        "grant-admin" | "revoke-admin" => {
            let on = form.action == "grant-admin";
            actions::set_admin(deps, &actor, &username, on)
                .await
                .map(|u| {
                    if on {
                        format!("{} is now an administrator. They were told by e-mail.", u.username)
                    } else {
                        format!("{} is no longer an administrator. They were told by e-mail.", u.username)
                    }
                })
        }
        "disable" | "enable" => {
            let active = form.action == "enable";
            actions::set_active(deps, &actor, &username, active)
                .await
                .map(|u| {
                    if active {
                        format!("{}'s account is enabled again: they can sign in and their tokens work. They were told by e-mail.", u.username)
                    } else {
                        format!("{}'s account is disabled: their sessions ended and their tokens are refused. Nothing was deleted. They were told by e-mail.", u.username)
                    }
                })
        }
        "reset-2fa" => actions::reset_two_factor(deps, &actor, &username)
            .await
            .map(|reset| {
                format!(
                    "Removed every second factor of {}: TOTP {}, {} security keys and passkeys, {} recovery codes. They were told by e-mail.",
                    username.trim(),
                    if reset.totp { "yes" } else { "no" },
                    reset.webauthn_credentials,
                    reset.recovery_codes
                )
            }),
        _ => {
            return Err(web.error(AppError::bad_request(
                "Choose one of the actions on the user's page.",
            )));
        }
    };
    match done {
        Ok(message) => Ok(web.redirect_with(&back_to, Flash::success(message))),
        Err(error) => refused(&web, &back_to, error),
    }
}
