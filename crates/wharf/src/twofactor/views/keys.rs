//! Registering and removing security keys (a second factor) and passkeys (which sign in
//! alone): `/manage/account/webauthn-provision` and `/manage/account/webauthn/delete`. Both
//! kinds go through one registration path; `Registers` holds what differs between them.

use axum::Form;
use axum::http::{StatusCode, header};
use axum::response::Response;
use minijinja::context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    CreationChallengeResponse, Credential, CredentialID, PasskeyRegistration,
    RegisterPublicKeyCredential, SecurityKeyRegistration, Uuid, Webauthn, WebauthnResult,
};

use super::{
    CeremonyForm, MANAGE, json_error, json_location, may_remove_one, needs_recovery_codes, notify,
    options_json, recent, relying_party,
};
use crate::accounts::User;
use crate::twofactor::{self, webauthn as wa, webauthn::Kind};
use crate::web::{Flash, FormErrors, OrPage, Page, Web};

/// The same for the WebAuthn script, which gets JSON.
fn recent_json(web: &Web) -> Result<User, Response> {
    match web.session.as_ref() {
        Some(s) if s.recently_authenticated(web.now_micros(), web.state.settings.reauth_secs) => {
            Ok(s.user.clone())
        }
        _ => Err(json_error(
            StatusCode::UNAUTHORIZED,
            "Confirm your password again: reload the page.",
        )),
    }
}

pub async fn webauthn_provision_page(web: Web) -> Page {
    let user = recent(&web)?;
    needs_recovery_codes(&web, &user).await?;
    Ok(web.render(
        "webauthn_provision.html",
        context! { errors => FormErrors::default() },
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegisterOptionsForm {
    label: String,
    kind: String,
}

/// A registration ceremony waiting for the browser's answer: the label chosen, and
/// webauthn-rs's state.
#[derive(Serialize, Deserialize)]
struct Registration<T> {
    label: String,
    state: T,
}

/// What differs between registering a security key and a passkey.
trait Registers {
    const KIND: Kind;
    /// Where the notice and the message name the credential: "a security key (…)".
    const NOUN: &'static str;
    type State: Serialize + DeserializeOwned;

    fn start(
        rp: &Webauthn,
        user: Uuid,
        username: &str,
        exclude: Vec<CredentialID>,
    ) -> WebauthnResult<(CreationChallengeResponse, Self::State)>;

    fn finish(
        rp: &Webauthn,
        answer: &RegisterPublicKeyCredential,
        state: &Self::State,
    ) -> WebauthnResult<Credential>;

    /// The message once it is added.
    fn added(label: &str) -> String;
}

struct SecurityKeys;

impl Registers for SecurityKeys {
    const KIND: Kind = Kind::SecurityKey;
    const NOUN: &'static str = "security key";
    type State = SecurityKeyRegistration;

    fn start(
        rp: &Webauthn,
        user: Uuid,
        username: &str,
        exclude: Vec<CredentialID>,
    ) -> WebauthnResult<(CreationChallengeResponse, Self::State)> {
        let (mut options, state) =
            rp.start_securitykey_registration(user, username, username, Some(exclude), None, None)?;
        // Chromium refuses "user verification required" protection on a credential that is
        // not discoverable, and a second factor needs no such protection: ask for none.
        if let Some(extensions) = options.public_key.extensions.as_mut() {
            extensions.cred_protect = None;
        }
        Ok((options, state))
    }

    fn finish(
        rp: &Webauthn,
        answer: &RegisterPublicKeyCredential,
        state: &Self::State,
    ) -> WebauthnResult<Credential> {
        rp.finish_securitykey_registration(answer, state)
            .map(Credential::from)
    }

    fn added(label: &str) -> String {
        format!("Security key \"{label}\" added.")
    }
}

struct Passkeys;

impl Registers for Passkeys {
    const KIND: Kind = Kind::Passkey;
    const NOUN: &'static str = "passkey";
    type State = PasskeyRegistration;

    fn start(
        rp: &Webauthn,
        user: Uuid,
        username: &str,
        exclude: Vec<CredentialID>,
    ) -> WebauthnResult<(CreationChallengeResponse, Self::State)> {
        let (mut options, state) =
            rp.start_passkey_registration(user, username, username, Some(exclude))?;
        // A passkey must be discoverable: it is found without a username.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.require_resident_key = true;
            selection.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Required);
        }
        Ok((options, state))
    }

    fn finish(
        rp: &Webauthn,
        answer: &RegisterPublicKeyCredential,
        state: &Self::State,
    ) -> WebauthnResult<Credential> {
        rp.finish_passkey_registration(answer, state)
            .map(Credential::from)
    }

    fn added(label: &str) -> String {
        format!("Passkey \"{label}\" added: you can sign in with it alone.")
    }
}

/// The ceremony's purpose, so that an answer for one kind cannot finish the other.
fn purpose(kind: Kind) -> String {
    format!("register-{}", kind.as_str())
}

pub async fn webauthn_register_options(web: Web, Form(form): Form<RegisterOptionsForm>) -> Page {
    let rp = relying_party(&web)?;
    let user = recent_json(&web)?;
    let label = form.label.trim().to_owned();
    if label.is_empty() || label.chars().count() > 64 {
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            "Give the key a label of 1 to 64 characters.",
        ));
    }
    if !twofactor::methods(&web.state.db, &user.id)
        .await
        .or_page(&web)?
        .recovery_codes_confirmed
    {
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            "Save your recovery codes first.",
        ));
    }
    let existing = wa::credentials_of(&web.state.db, &user.id)
        .await
        .or_page(&web)?;
    if existing.iter().any(|c| c.label == label) {
        return Ok(json_error(
            StatusCode::BAD_REQUEST,
            &format!("Label '{label}' already in use: choose another one."),
        ));
    }
    let exclude = existing
        .iter()
        .map(|c| c.credential.cred_id.clone())
        .collect();
    match Kind::parse(&form.kind) {
        Kind::Passkey => begin::<Passkeys>(&web, &rp, &user, label, exclude).await,
        Kind::SecurityKey => begin::<SecurityKeys>(&web, &rp, &user, label, exclude).await,
    }
}

/// Starts a registration of kind `R` and keeps its state until the browser answers.
async fn begin<R: Registers>(
    web: &Web,
    rp: &Webauthn,
    user: &User,
    label: String,
    exclude: Vec<CredentialID>,
) -> Page {
    let user_uuid = Uuid::parse_str(&user.id)
        .map_err(|_| "user ids are UUIDs")
        .or_page(web)?;
    let (options, state) = R::start(rp, user_uuid, &user.username, exclude).or_page(web)?;
    let id = wa::save_ceremony(
        &web.state.db,
        Some(&user.id),
        &purpose(R::KIND),
        &Registration { label, state },
        web.now_micros(),
    )
    .await
    .or_page(web)?;
    Ok(options_json(&id, options))
}

pub async fn webauthn_register(web: Web, Form(form): Form<CeremonyForm>) -> Page {
    let rp = relying_party(&web)?;
    let user = recent_json(&web)?;
    let Ok(answer) = serde_json::from_str::<RegisterPublicKeyCredential>(&form.credential) else {
        return Ok(json_error(StatusCode::BAD_REQUEST, REFUSED));
    };
    match Kind::parse(&form.kind) {
        Kind::Passkey => register::<Passkeys>(&web, &rp, &user, &form.ceremony, &answer).await,
        Kind::SecurityKey => {
            register::<SecurityKeys>(&web, &rp, &user, &form.ceremony, &answer).await
        }
    }
}

const REFUSED: &str = "The key could not be registered. Try again.";

/// Finishes a registration of kind `R` with the browser's answer and stores the credential.
async fn register<R: Registers>(
    web: &Web,
    rp: &Webauthn,
    user: &User,
    ceremony: &str,
    answer: &RegisterPublicKeyCredential,
) -> Page {
    let taken: Option<Registration<R::State>> = wa::take_ceremony(
        &web.state.db,
        ceremony,
        Some(&user.id),
        &purpose(R::KIND),
        web.now_micros(),
    )
    .await
    .or_page(web)?;
    let Some((label, credential)) =
        taken.and_then(|r| Some((r.label, R::finish(rp, answer, &r.state).ok()?)))
    else {
        return Ok(json_error(StatusCode::BAD_REQUEST, REFUSED));
    };
    match wa::add(
        &web.state.db,
        &user.id,
        R::KIND,
        &label,
        &credential,
        &web.meta,
        web.now_micros(),
    )
    .await
    {
        Ok(()) => {}
        Err(wa::StoreError::Database) => return Err("cannot store a credential").or_page(web),
        Err(e) => return Ok(json_error(StatusCode::BAD_REQUEST, &e.to_string())),
    }
    notify(
        web,
        user,
        "two-factor-added",
        context! { method => format!("a {} ({label})", R::NOUN) },
    )
    .await;
    let mut response = json_location(web, MANAGE);
    // The page the script goes to shows the message.
    let redirect = web.redirect_with(MANAGE, Flash::success(R::added(&label)));
    for value in redirect.headers().get_all(header::SET_COOKIE) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, value.clone());
    }
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RemoveKeyForm {
    credential: String,
    confirm_label: String,
}

pub async fn webauthn_remove(web: Web, Form(form): Form<RemoveKeyForm>) -> Page {
    let user = recent(&web)?;
    let stored = wa::credentials_of(&web.state.db, &user.id)
        .await
        .or_page(&web)?
        .into_iter()
        .find(|c| c.id == form.credential);
    let Some(stored) = stored else {
        return Ok(web.redirect_with(MANAGE, Flash::error("That key is not on your account.")));
    };
    if form.confirm_label.trim() != stored.label {
        return Ok(web.redirect_with(
            MANAGE,
            Flash::error(format!(
                "Type the label, {}, to remove the key: it was not removed.",
                stored.label
            )),
        ));
    }
    may_remove_one(&web, &user).await?;
    let removed = wa::remove(
        &web.state.db,
        &user.id,
        &stored.id,
        &web.meta,
        web.now_micros(),
    )
    .await
    .or_page(&web)?;
    let Some(label) = removed else {
        return Ok(web.redirect(MANAGE));
    };
    notify(
        &web,
        &user,
        "two-factor-removed",
        context! { method => format!("the key \"{label}\"") },
    )
    .await;
    Ok(web.redirect_with(MANAGE, Flash::success(format!("Removed \"{label}\"."))))
}
