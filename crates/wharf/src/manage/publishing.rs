//! `/manage/account/publishing/`: the user's pending trusted publishers (a CI workflow that
//! will create a project that does not exist yet), and the publisher form both it and a
//! project's publishing page read. Changes need a recently entered password.

use axum::Form;
use axum::http::StatusCode;
use minijinja::context;
use serde::Deserialize;

use crate::oidc::Issuers;
use crate::oidc::claims::{Kind, Publisher};
use crate::oidc::pending;
use crate::oidc::publishers::{By, Field, NewPublisher, PublisherError};
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

const PAGE: &str = "/manage/account/publishing/";

/// The publisher form: `kind` is `github` or `gitlab`; the fields are named as GitHub and
/// GitLab name them on the page, stored in the same columns.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct PublisherForm {
    pub kind: String,
    pub project_name: String,
    pub owner: String,
    pub repository: String,
    pub workflow: String,
    pub environment: String,
    pub owner_id: String,
    pub issuer: String,
    /// Google: the subject (optional).
    pub subject: String,
    /// Generic: the issuer's name in the settings.
    pub generic: String,
    /// Generic: `claim.<name>` fields, one per claim the issuer names.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, String>,
}

/// The form as a publisher to register, or the field to point at and why not.
pub(crate) fn new_publisher(
    form: &PublisherForm,
    issuers: &Issuers,
) -> Result<NewPublisher, (String, String)> {
    let kind = Kind::parse(&form.kind).ok_or_else(|| {
        (
            "github-owner".to_owned(),
            "Choose the kind of publisher.".to_owned(),
        )
    })?;
    let issuer = match kind {
        Kind::Google => issuers.google().to_owned(),
        Kind::Generic => return new_generic(form, issuers),
        Kind::GitHub => issuers.github().to_owned(),
        Kind::GitLab if form.issuer.trim().is_empty() => issuers
            .default_gitlab()
            .ok_or_else(|| {
                (
                    "gitlab-owner".to_owned(),
                    "This index trusts no GitLab instance (trusted_publishing.gitlab_issuers is empty).".to_owned(),
                )
            })?
            .to_owned(),
        Kind::GitLab if issuers.is_gitlab(form.issuer.trim()) => form.issuer.trim().to_owned(),
        Kind::GitLab => {
            return Err((
                "gitlab-issuer".to_owned(),
                "Choose one of the GitLab instances this index trusts.".to_owned(),
            ));
        }
    };
    let owner_id = form.owner_id.trim();
    let subject = form.subject.trim();
    NewPublisher {
        kind,
        issuer,
        owner: form.owner.trim().to_owned(),
        repository: form.repository.trim().to_owned(),
        workflow: form.workflow.trim().to_owned(),
        environment: form.environment.trim().to_owned(),
        owner_id: (kind == Kind::GitHub && !owner_id.is_empty()).then(|| owner_id.to_owned()),
        claims: if kind == Kind::Google && !subject.is_empty() {
            std::collections::BTreeMap::from([("sub".to_owned(), subject.to_owned())])
        } else {
            std::collections::BTreeMap::new()
        },
    }
    .checked()
    .map_err(|e| (field_of(form, issuers, &e), sentence(&e.to_string())))
}

/// A generic issuer's publisher from its form: the issuer by name, a value per claim.
fn new_generic(form: &PublisherForm, issuers: &Issuers) -> Result<NewPublisher, (String, String)> {
    let configured = issuers.generic_issuers();
    let Some(index) = configured
        .iter()
        .position(|g| g.name.trim().eq_ignore_ascii_case(form.generic.trim()))
    else {
        return Err((
            "github-owner".to_owned(),
            "That issuer is not one this index trusts.".to_owned(),
        ));
    };
    let generic = &configured[index];
    let mut claims = std::collections::BTreeMap::new();
    for name in &generic.claims {
        let value = form
            .extra
            .get(&format!("claim.{name}"))
            .map(|v| v.trim())
            .unwrap_or_default();
        if value.is_empty() || value.len() > 255 {
            return Err((
                generic_field(index, name),
                format!("Give the value of the claim {name} (at most 255 characters)."),
            ));
        }
        claims.insert(name.clone(), value.to_owned());
    }
    NewPublisher {
        kind: Kind::Generic,
        issuer: generic.issuer.as_str().to_owned(),
        owner: String::new(),
        repository: String::new(),
        workflow: String::new(),
        environment: String::new(),
        owner_id: None,
        claims,
    }
    .checked()
    .map_err(|e| {
        let first = generic.claims.first().cloned().unwrap_or_default();
        (generic_field(index, &first), sentence(&e.to_string()))
    })
}

/// The id of the project name field of the form that was sent.
fn project_name_field(form: &PublisherForm, issuers: &Issuers) -> String {
    match (form.kind.as_str(), generic_index(form, issuers)) {
        ("generic", Some(index)) => format!("generic-{index}-project_name"),
        (kind, _) => format!("{kind}-project_name"),
    }
}

/// The id of a generic issuer's claim field on the page.
fn generic_field(index: usize, claim: &str) -> String {
    format!("generic-{index}-claim-{claim}")
}

/// The generic issuers for the forms: name, index and claims (with their field ids).
pub(crate) fn generic_forms(web: &Web) -> Vec<minijinja::Value> {
    web.state
        .oidc
        .generic_issuers()
        .iter()
        .enumerate()
        .map(|(index, g)| {
            let claims: Vec<minijinja::Value> = g
                .claims
                .iter()
                .map(|c| context! { name => c.clone(), id => generic_field(index, c) })
                .collect();
            context! { index => index, name => g.name.clone(), issuer => g.issuer.as_str(), claims => claims }
        })
        .collect()
}

/// The id of the field (on the page, within the form that was sent) a refusal is about, for
/// the error summary's link.
pub(crate) fn field_of(form: &PublisherForm, issuers: &Issuers, error: &PublisherError) -> String {
    let field = error.field();
    if field == Field::ProjectName {
        return project_name_field(form, issuers);
    }
    match form.kind.as_str() {
        "generic" => {
            let index = generic_index(form, issuers);
            let first = index
                .and_then(|i| issuers.generic_issuers()[i].claims.first().cloned())
                .unwrap_or_default();
            generic_field(index.unwrap_or(0), &first)
        }
        "google" if field == Field::Subject => "google-subject".to_owned(),
        "google" => "google-owner".to_owned(),
        kind => {
            let field = match field {
                Field::Repository => "repository",
                Field::Workflow => "workflow",
                Field::Environment => "environment",
                Field::OwnerId => "owner_id",
                _ => "owner",
            };
            let kind = if kind == "gitlab" { "gitlab" } else { "github" };
            format!("{kind}-{field}")
        }
    }
}

fn generic_index(form: &PublisherForm, issuers: &Issuers) -> Option<usize> {
    issuers
        .generic_issuers()
        .iter()
        .position(|g| g.name.trim().eq_ignore_ascii_case(form.generic.trim()))
}

pub(crate) use crate::web::forms::sentence;

/// What the publisher forms need of the settings: the GitLab instances to choose from.
pub(crate) fn gitlab_issuers(web: &Web) -> Vec<String> {
    web.state
        .settings
        .trusted_publishing
        .gitlab_issuers
        .0
        .iter()
        .map(|i| i.as_str().to_owned())
        .collect()
}

/// How a publisher is shown in the lists.
pub(crate) fn shown(publisher: &Publisher) -> minijinja::Value {
    context! {
        id => publisher.id.clone(),
        kind => publisher.kind.display(),
        specifier => publisher.specifier(),
        url => publisher.url(),
        environment => publisher.environment.clone(),
        owner_id => publisher.owner_id.clone(),
    }
}

pub async fn page(web: Web) -> Page {
    web.require_recent_auth(PAGE)?;
    account_page(
        &web,
        StatusCode::OK,
        PublisherForm::default(),
        FormErrors::default(),
    )
    .await
}

async fn account_page(
    web: &Web,
    status: StatusCode,
    form: PublisherForm,
    errors: FormErrors,
) -> Page {
    let session = web.require_session()?;
    let listed = pending::for_user(&web.state.db, &session.user.id)
        .await
        .or_page(web)?;
    let listed: Vec<minijinja::Value> = listed
        .iter()
        .map(|p| {
            context! {
                project_name => p.project_name.clone(),
                ..shown(&p.publisher)
            }
        })
        .collect();
    Ok(web.render_status(
        status,
        "manage_account_publishing.html",
        context! {
            pending => listed,
            limit => pending::PER_USER,
            form => minijinja::Value::from(minijinja::value::Serde(&form)),
            gitlab_issuers => gitlab_issuers(web),
            generic_issuers => generic_forms(web),
            errors => errors,
        },
    ))
}

pub async fn add(web: Web, Form(form): Form<PublisherForm>) -> Page {
    let session = web.require_recent_auth(PAGE)?.clone();
    let new = match new_publisher(&form, &web.state.oidc) {
        Ok(new) => new,
        Err((field, message)) => {
            let errors = FormErrors::one(&field, message);
            return account_page(&web, StatusCode::BAD_REQUEST, form, errors).await;
        }
    };
    let by = By {
        username: Some(&session.user.username),
        via: "web",
        meta: &web.meta,
        now_micros: web.now_micros(),
    };
    let proxying = web.state.proxy.is_some();
    match pending::add(
        &web.state.db,
        new,
        &form.project_name,
        &session.user,
        proxying,
        web.state.settings.require_2fa,
        &by,
    )
    .await
    {
        Ok(added) => Ok(web.redirect_with(
            PAGE,
            Flash::success(format!(
                "Added a pending publisher: the first publish from {} creates {}, with you as its Owner.",
                added.publisher.specifier(),
                added.project_name
            )),
        )),
        Err(PublisherError::Database(e)) => Err(web.error(e.into())),
        Err(e) => {
            let field = field_of(&form, &web.state.oidc, &e);
            let errors = FormErrors::one(&field, sentence(&e.to_string()));
            account_page(&web, StatusCode::BAD_REQUEST, form, errors).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RemoveForm {
    publisher_id: String,
}

pub async fn remove(web: Web, Form(form): Form<RemoveForm>) -> Page {
    let session = web.require_recent_auth(PAGE)?.clone();
    let by = By {
        username: Some(&session.user.username),
        via: "web",
        meta: &web.meta,
        now_micros: web.now_micros(),
    };
    let removed = pending::remove(
        &web.state.db,
        form.publisher_id.trim(),
        Some(&session.user.id),
        &by,
    )
    .await
    .or_page(&web)?;
    Ok(if removed {
        web.redirect_with(PAGE, Flash::success("Removed the pending publisher."))
    } else {
        web.redirect_with(
            PAGE,
            Flash::error("That pending publisher is no longer there: it may have created its project already."),
        )
    })
}
