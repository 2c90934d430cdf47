//! `/admin/proxy/`: the upstream index this one proxies, the blocks set on its projects (each
//! with an "Unblock" button), forms to block `NAME` or `NAME==VERSION` with a reason and to
//! claim a name for a hosted project, and the names served from the upstream, newest first.
//! The actions are `proxy::actions`' (as `wharf proxy block|unblock` and `wharf project claim`
//! take them), each behind re-authentication; this process then forgets what it held of the
//! name, so the change is served at once.

use axum::Form;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::actions::AdminActor;
use super::users::{acting_admin, refused};
use crate::error::AppError;
use crate::proxy::{actions, store};
use crate::web::{Flash, OrPage, Page, Web};

const PAGE: &str = "/admin/proxy/";
/// How many of the names served from the upstream the page lists.
const NAMES_SHOWN: i64 = 200;

#[derive(Clone, Debug, Serialize)]
struct BlockView {
    /// `NAME` or `NAME==VERSION`, as the forms and `wharf proxy unblock` take it.
    target: String,
    normalized_name: String,
    reason: String,
    created_by: String,
    created: i64,
}

#[derive(Clone, Debug, Serialize)]
struct NameView {
    name: String,
    /// When the upstream last answered for it (unix micros).
    fetched: i64,
    claimed: bool,
}

crate::site::template_value!(BlockView, NameView);

fn target_of(block: &store::Block) -> String {
    if block.version.is_empty() {
        block.normalized_name.clone()
    } else {
        format!("{}=={}", block.normalized_name, block.version)
    }
}

pub async fn page(web: Web) -> Page {
    super::require_admin(&web)?;
    let Some(proxy) = &web.state.proxy else {
        return Ok(web.render("admin_proxy.html", context! { upstream => None::<()> }));
    };
    let db = &web.state.db;
    let blocks: Vec<BlockView> = store::all_blocks(db)
        .await
        .or_page(&web)?
        .into_iter()
        .map(|b| BlockView {
            target: target_of(&b),
            normalized_name: b.normalized_name,
            reason: b.reason,
            created_by: b.created_by,
            created: b.created,
        })
        .collect();
    let names: Vec<NameView> = store::proxied_names(db, NAMES_SHOWN)
        .await
        .or_page(&web)?
        .into_iter()
        .map(|(name, fetched, claimed)| NameView {
            name,
            fetched,
            claimed,
        })
        .collect();
    Ok(web.render(
        "admin_proxy.html",
        context! {
            upstream => proxy.upstream.describe(),
            blocks => blocks,
            names => names,
            names_max => NAMES_SHOWN,
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActionForm {
    /// `block`, `unblock` or `claim`.
    action: String,
    /// `NAME` or `NAME==VERSION` (a name alone for `claim`).
    target: String,
    /// For `block`: why, shown to whoever asks for a blocked file.
    reason: String,
}

pub async fn act(web: Web, Form(form): Form<ActionForm>) -> Page {
    let admin = acting_admin(&web, PAGE).await?;
    let Some(proxy) = web.state.proxy.clone() else {
        return Ok(web.redirect_with(
            PAGE,
            Flash::error("This index proxies no upstream: there is nothing to block or claim."),
        ));
    };
    let actor = AdminActor {
        admin: Some(&admin),
        meta: &web.meta,
        now_micros: web.now_micros(),
    };
    let db = &web.state.db;
    let given = form.target.trim();
    let done = match form.action.as_str() {
        "block" => {
            if form.reason.trim().is_empty() {
                return Ok(web.redirect_with(
                    PAGE,
                    Flash::error(format!(
                        "Say why {given} is to be blocked: the reason is shown to whoever asks for a blocked file. Nothing was blocked."
                    )),
                ));
            }
            actions::block(db, &actor, given, &form.reason)
                .await
                .map(|what| {
                    (
                        what.clone(),
                        format!("Blocked {what}: its files are no longer served, even from the cache."),
                    )
                })
        }
        "unblock" => actions::unblock(db, &actor, given).await.map(|what| {
            (
                what.clone(),
                format!("Unblocked {what}: its files are served again."),
            )
        }),
        "claim" => actions::claim(db, &actor, given).await.map(|name| {
            (
                name.clone(),
                format!(
                    "Claimed {name}: it is never looked up upstream again, and a hosted project may now take the name."
                ),
            )
        }),
        _ => {
            return Err(web.error(AppError::bad_request(
                "Choose one of the actions on the proxy page.",
            )));
        }
    };
    match done {
        Ok((what, message)) => {
            // `NAME` or `NAME==VERSION`, the name normalised by the action.
            let name = what
                .split_once("==")
                .map_or(what.as_str(), |(name, _)| name);
            proxy.forget(name);
            web.state.cache.invalidate_project(name);
            Ok(web.redirect_with(PAGE, Flash::success(message)))
        }
        Err(error) => refused(&web, PAGE, error),
    }
}
