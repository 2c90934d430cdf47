//! `/admin/tokens/`: bulk invalidation of API tokens, as `wharf token invalidate` does
//! (`actions::invalidate_tokens`): filters (owner, project, created before) or every token,
//! and a reason; a preview that lists what would be revoked and changes nothing; then a
//! confirmation that revokes that selection, refused when it has changed since. Both ask for
//! the password again after `reauth_secs`.

use axum::Form;
use axum::http::StatusCode;
use minijinja::context;
use serde::Deserialize;

use super::actions::{self, AdminActor, AdminError, Run, TokenFilters, counted};
use super::require_admin;
use super::users::{acting_admin, sentence};
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

const PAGE: &str = "/admin/tokens/";
/// The preview lists this many tokens (and counts them all).
const LISTED: usize = 100;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct InvalidateForm {
    user: String,
    project: String,
    created_before: String,
    /// Checked: every token.
    all: String,
    reason: String,
    /// `preview` (the default) or `confirm`.
    action: String,
    /// For `confirm`: how many tokens the preview counted.
    expected: String,
}

impl InvalidateForm {
    fn filters(&self) -> TokenFilters {
        TokenFilters {
            user: self.user.clone(),
            project: self.project.clone(),
            created_before: self.created_before.clone(),
            all: !self.all.is_empty(),
        }
    }
}

fn render(
    web: &Web,
    status: StatusCode,
    errors: FormErrors,
    form: &InvalidateForm,
    preview: Option<minijinja::Value>,
) -> Page {
    Ok(web.render_status(
        status,
        "admin_tokens.html",
        context! {
            errors => errors,
            form => context! {
                user => form.user.trim(), project => form.project.trim(),
                created_before => form.created_before.trim(), all => !form.all.is_empty(),
                reason => form.reason.trim(),
            },
            preview => preview,
        },
    ))
}

pub async fn page(web: Web) -> Page {
    require_admin(&web)?;
    render(
        &web,
        StatusCode::OK,
        FormErrors::default(),
        &InvalidateForm::default(),
        None,
    )
}

pub async fn act(web: Web, Form(form): Form<InvalidateForm>) -> Page {
    let admin = acting_admin(&web, PAGE).await?;
    let actor = AdminActor {
        admin: Some(&admin),
        meta: &web.meta,
        now_micros: web.now_micros(),
    };
    let run = match form.action.as_str() {
        "confirm" => Run::Apply {
            expected: form.expected.trim().parse().ok(),
        },
        _ => Run::DryRun,
    };
    let done = actions::invalidate_tokens(
        (&web.state).into(),
        &actor,
        &form.filters(),
        &form.reason,
        run,
    )
    .await;
    let done = match done {
        Ok(done) => done,
        Err(AdminError::Database(e)) => return Err(e).or_page(&web),
        Err(error) => {
            let field = match &error {
                AdminError::NoUser(_) => "user",
                AdminError::NoProject(_) => "project",
                AdminError::Invalid { field, .. } => field,
                _ => "filters",
            };
            let errors = FormErrors::one(field, sentence(&error.to_string()));
            return render(&web, StatusCode::BAD_REQUEST, errors, &form, None);
        }
    };
    let counts = format!(
        "{} of {}",
        counted(done.tokens.len(), "token", "tokens"),
        counted(done.owners, "owner", "owners")
    );
    if run != Run::DryRun {
        return Ok(web.redirect_with(
            PAGE,
            Flash::success(format!(
                "Invalidated {counts}. Each owner was told by e-mail, with the reason."
            )),
        ));
    }
    let listed: Vec<_> = done.tokens.iter().take(LISTED).cloned().collect();
    let preview = context! {
        count => done.tokens.len(),
        counts => counts,
        tokens => listed,
        more => done.tokens.len().saturating_sub(LISTED),
    };
    render(
        &web,
        StatusCode::OK,
        FormErrors::default(),
        &form,
        Some(preview),
    )
}
