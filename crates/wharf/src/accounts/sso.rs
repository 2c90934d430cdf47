//! Sign-in through the organization's OpenID Connect providers (the `sso` setting): the
//! authorization code flow with PKCE, `state` and `nonce` (RFC 6749, 7636; OpenID Connect
//! Core 3.1), the ID token checked as trusted publishing checks one (`oidc::jwt`), and the
//! `sso_identities` store that ties a provider's subject to an account. The views
//! (`accounts::views::sso`) carry the flow's secrets in a signed cookie between the two legs.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use subtle::ConstantTimeEq;

use crate::config::Settings;
use crate::config::sso::SsoProvider;
use crate::db::Db;
use crate::events::{self, EventTag, RequestMeta, Source};
use crate::oidc::claims::Claims;
use crate::oidc::{jwt, keys};

/// A provider's endpoints are read from its discovery document again after this long.
const ENDPOINTS_MAX_AGE_SECS: i64 = 3600;
/// After a failed read of the discovery document, sign-ins are told at once that the
/// provider cannot be reached for this long (rather than each waiting for the timeout).
const FAILURE_HOLD_SECS: i64 = 15;

/// What the provider's endpoints are.
#[derive(Clone, Debug)]
struct Endpoints {
    authorization: String,
    token: String,
    fetched_secs: i64,
}

/// The providers, their keys and endpoints (`AppState::sso`).
pub struct Sso {
    providers: Vec<SsoProvider>,
    keys: keys::KeyCache,
    endpoints: RwLock<HashMap<String, Endpoints>>,
    /// The last failed read of each provider's discovery document: when, and why.
    failures: RwLock<HashMap<String, (i64, String)>>,
}

/// What the first leg hands the second, in a signed cookie that lives 10 minutes: the
/// provider, `state`, `nonce`, the PKCE verifier, where to go after, and whether this is a
/// re-authentication of the signed-in user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flow {
    pub provider: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub next: String,
    pub reauth: bool,
    /// When the flow began (unix seconds): a re-authentication's `auth_time` must be later.
    pub started: i64,
}

/// How long the provider's page may take.
pub const FLOW_SECS: i64 = 600;

/// Who the provider says signed in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub provider: String,
    /// The issuer that vouched for the subject (a provider's name may be pointed at another
    /// issuer later: its subjects are not the same people).
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub email_verified: bool,
    /// A username to propose: `preferred_username`, else the address's local part.
    pub proposed_username: String,
    /// The provider says it checked a second factor (`amr`).
    pub mfa: bool,
    /// When the person authenticated at the provider (`auth_time`), if it says.
    pub auth_time: Option<i64>,
}

/// Why a provider's answer signs no one in: the reason recorded in the event, and the
/// details for the operator's log (never for the page).
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub detail: String,
}

impl From<String> for Refusal {
    fn from(detail: String) -> Refusal {
        Refusal {
            reason: "sso_invalid",
            detail,
        }
    }
}

fn random_text() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The PKCE S256 challenge of a verifier.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `amr` values (RFC 8176) that name an authentication method: a second factor was checked
/// when the provider says `mfa`, or names two different methods (`pwd` and `otp`, say). One
/// method alone, even `otp` or `hwk`, is one factor.
const METHODS: &[&str] = &[
    "pwd", "pin", "otp", "hwk", "swk", "sms", "tel", "fpt", "face", "iris", "kba", "sc", "user",
];

impl Sso {
    pub fn new(settings: &Settings) -> anyhow::Result<Sso> {
        let providers = settings.sso.clone();
        let keys = keys::KeyCache::new(providers.iter().map(|p| p.issuer.as_str()))?;
        Ok(Sso {
            providers,
            keys,
            endpoints: RwLock::default(),
            failures: RwLock::default(),
        })
    }

    /// Reads every provider's discovery document once, so that a mistyped issuer or an
    /// unreachable provider shows in the log when the server starts, not at someone's sign-in.
    pub async fn probe(&self, now_secs: i64) {
        for provider in &self.providers {
            match self.endpoints(provider, now_secs).await {
                Ok(_) => {
                    tracing::info!(provider = %provider.name, issuer = %provider.issuer.as_str(), "identity provider reachable")
                }
                Err(reason) => {
                    tracing::warn!(provider = %provider.name, reason = %reason, "identity provider cannot be reached: its sign-in will fail until it can")
                }
            }
        }
    }

    pub fn providers(&self) -> &[SsoProvider] {
        &self.providers
    }

    pub fn provider(&self, name: &str) -> Option<&SsoProvider> {
        self.providers.iter().find(|p| p.name == name)
    }

    async fn endpoints(&self, provider: &SsoProvider, now_secs: i64) -> Result<Endpoints, String> {
        let held = self
            .endpoints
            .read()
            .ok()
            .and_then(|held| held.get(&provider.name).cloned());
        if let Some(held) = &held
            && now_secs - held.fetched_secs < ENDPOINTS_MAX_AGE_SECS
        {
            return Ok(held.clone());
        }
        // While the provider cannot be reached, endpoints read before stay good: a sign-in
        // under way can still finish when it comes back.
        let stale = held;
        let failed = self
            .failures
            .read()
            .ok()
            .and_then(|failures| failures.get(&provider.name).cloned());
        if let Some((when, reason)) = failed
            && now_secs - when < FAILURE_HOLD_SECS
        {
            return stale.ok_or(reason);
        }
        let read = self.read_endpoints(provider, now_secs).await;
        let endpoints = match read {
            Ok(endpoints) => endpoints,
            Err(reason) => {
                // Held, whether the document could not be fetched or names bad endpoints.
                if let Ok(mut failures) = self.failures.write() {
                    failures.insert(provider.name.clone(), (now_secs, reason.clone()));
                }
                return stale.ok_or(reason);
            }
        };
        if let Ok(mut held) = self.endpoints.write() {
            held.insert(provider.name.clone(), endpoints.clone());
        }
        Ok(endpoints)
    }

    /// The provider's endpoints from its discovery document, fetched now.
    async fn read_endpoints(
        &self,
        provider: &SsoProvider,
        now_secs: i64,
    ) -> Result<Endpoints, String> {
        let issuer = provider.issuer.as_str();
        let document = self.keys.discovery(issuer).await?;
        let endpoint = |name: &str| -> Result<String, String> {
            let url = document
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{issuer}'s discovery document has no {name}"))?;
            let parsed = url::Url::parse(url).map_err(|_| format!("bad {name} {url}"))?;
            // Plain http only for a provider an admin configured as plain http (a test one).
            if parsed.scheme() != "https"
                && !(parsed.scheme() == "http" && issuer.starts_with("http://"))
            {
                return Err(format!("{name} {url} is not https"));
            }
            Ok(url.to_owned())
        };
        Ok(Endpoints {
            authorization: endpoint("authorization_endpoint")?,
            token: endpoint("token_endpoint")?,
            fetched_secs: now_secs,
        })
    }

    /// The first leg: where to send the browser, and the flow to keep for the second.
    /// A re-authentication asks the provider to authenticate the person again.
    pub async fn begin(
        &self,
        provider: &SsoProvider,
        redirect_uri: &str,
        next: &str,
        reauth: bool,
        now_secs: i64,
    ) -> Result<(String, Flow), String> {
        let endpoints = self.endpoints(provider, now_secs).await?;
        let flow = Flow {
            provider: provider.name.clone(),
            state: random_text(),
            nonce: random_text(),
            verifier: random_text(),
            next: next.to_owned(),
            reauth,
            started: now_secs,
        };
        let mut url = url::Url::parse(&endpoints.authorization)
            .map_err(|_| "bad authorization_endpoint".to_owned())?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &provider.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", "openid email profile")
                .append_pair("state", &flow.state)
                .append_pair("nonce", &flow.nonce)
                .append_pair("code_challenge", &challenge(&flow.verifier))
                .append_pair("code_challenge_method", "S256");
            if reauth {
                query
                    .append_pair("prompt", "login")
                    .append_pair("max_age", "0");
            }
        }
        Ok((url.to_string(), flow))
    }

    /// The second leg: the provider's `state` must be the flow's; the code is exchanged (with
    /// the PKCE verifier and the client's secret) for an ID token, whose signature, issuer,
    /// audience, times and `nonce` are checked.
    pub async fn finish(
        &self,
        provider: &SsoProvider,
        flow: &Flow,
        state: &str,
        code: &str,
        redirect_uri: &str,
        now_secs: i64,
    ) -> Result<Identity, Refusal> {
        if flow.provider != provider.name
            || !bool::from(flow.state.as_bytes().ct_eq(state.as_bytes()))
        {
            return Err(Refusal::from(
                "the sign-in's state does not match this browser's".to_owned(),
            ));
        }
        if code.is_empty() || code.len() > 2048 {
            return Err(Refusal::from(
                "the provider sent no authorization code".to_owned(),
            ));
        }
        let endpoints = self.endpoints(provider, now_secs).await?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", &flow.verifier)
            .finish();
        let response = self
            .keys
            .client()
            .post(&endpoints.token)
            // RFC 6749 2.3.1: the id and secret are form-encoded inside the Basic credentials.
            .basic_auth(
                form_encode(&provider.client_id),
                Some(form_encode(&provider.client_secret)),
            )
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the provider's token endpoint cannot be reached: {e}"))?;
        let status = response.status();
        let body = keys::read_json(&endpoints.token, response).await?;
        if !status.is_success() {
            let error = body.get("error").and_then(Value::as_str).unwrap_or("?");
            return Err(Refusal::from(format!(
                "the provider refused the code ({status}, {error})"
            )));
        }
        let id_token = body
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| "the provider sent no ID token".to_owned())?;
        let claims = jwt::verify(
            &self.keys,
            id_token,
            provider.issuer.as_str(),
            &provider.client_id,
            now_secs,
        )
        .await
        .map_err(|reason| format!("the ID token is not valid: {reason}"))?;
        let nonce = claims
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !bool::from(nonce.as_bytes().ct_eq(flow.nonce.as_bytes())) {
            return Err(Refusal::from(
                "the ID token's nonce is not this sign-in's".to_owned(),
            ));
        }
        identity(provider, &claims)
    }
}

/// Who the claims name, once they carry the provider's `required_claims`.
fn identity(provider: &SsoProvider, claims: &Claims) -> Result<Identity, Refusal> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
    let subject = text("sub");
    if subject.is_empty() || subject.len() > 255 {
        return Err(Refusal::from("the ID token has no subject".to_owned()));
    }
    // A claim's value as text: a string as it is, a number or boolean as JSON writes it.
    let scalar = |name: &str| match claims.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
        _ => None,
    };
    if let Some((claim, want)) = provider
        .required_claims
        .iter()
        .find(|(claim, want)| scalar(claim).as_deref() != Some(want.as_str()))
    {
        return Err(Refusal {
            reason: "sso_claims",
            detail: format!(
                "the ID token's {claim} is {:?}, not the required {want:?}",
                claims.get(claim.as_str()).map(Value::to_string)
            ),
        });
    }
    let email = text("email").trim().to_owned();
    // RFC 5321's longest address (a longer one would not fit the signed cookies it rides in).
    if email.len() > 320 {
        return Err(Refusal::from("the ID token's email is too long".to_owned()));
    }
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        // A provider that sends no such claim, whose addresses the organization assigns.
        None => provider.emails_verified && !email.is_empty(),
        _ => false,
    };
    let amr: Vec<&str> = claims
        .get("amr")
        .and_then(Value::as_array)
        .map(|methods| methods.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut named: Vec<&str> = amr
        .iter()
        .copied()
        .filter(|m| METHODS.contains(m))
        .collect();
    named.sort_unstable();
    named.dedup();
    let mfa = amr.contains(&"mfa") || named.len() >= 2;
    let preferred = text("preferred_username");
    let base = if preferred.is_empty() {
        email.split('@').next().unwrap_or_default()
    } else {
        preferred.split('@').next().unwrap_or_default()
    };
    let proposed: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .take(50)
        .collect();
    Ok(Identity {
        provider: provider.name.clone(),
        issuer: provider.issuer.as_str().to_owned(),
        subject: subject.to_owned(),
        email,
        email_verified,
        proposed_username: proposed
            .trim_matches(|c: char| !c.is_ascii_alphanumeric())
            .to_owned(),
        mfa,
        auth_time: jwt::seconds(claims, "auth_time").ok().flatten(),
    })
}

/// The account a provider's subject is linked to.
pub async fn linked_user(db: &Db, identity: &Identity) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT user_id FROM sso_identities WHERE provider = $1 AND subject = $2 AND issuer = $3",
    )
    .bind(&identity.provider)
    .bind(&identity.subject)
    .bind(&identity.issuer)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(id,)| id))
}

/// Notes a sign-in through the identity.
pub async fn touch(
    db: &Db,
    provider: &str,
    subject: &str,
    now_micros: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sso_identities SET last_used = $3 WHERE provider = $1 AND subject = $2")
        .bind(provider)
        .bind(subject)
        .bind(now_micros)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Links a provider's subject to an account, with `account:sso:linked` on its log; `false`
/// when the subject is linked already, or the account already has an identity of this
/// provider.
pub async fn link(
    conn: &mut AnyConnection,
    identity: &Identity,
    user_id: &str,
    by: &str,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO sso_identities (provider, subject, user_id, email, created, issuer) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(&identity.provider)
    .bind(&identity.subject)
    .bind(user_id)
    .bind(&identity.email)
    .bind(now_micros)
    .bind(&identity.issuer)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    events::record(
        conn,
        Source::User(user_id),
        EventTag::AccountSsoLinked,
        meta,
        now_micros,
        serde_json::json!({"provider": identity.provider, "issuer": identity.issuer, "subject": identity.subject, "email": identity.email, "linked_by": by}),
    )
    .await?;
    Ok(true)
}

/// Links a first sign-in's identity to the account whose password (and second factor, when
/// it has one) the person just gave, and tells its owner. False when either is linked already.
pub async fn link_proven(
    state: &crate::state::AppState,
    identity: &Identity,
    user: &crate::accounts::User,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<bool, sqlx::Error> {
    let mut conn = state.db.pool().acquire().await?;
    let linked = link(
        &mut conn,
        identity,
        &user.id,
        &user.username,
        meta,
        now_micros,
    )
    .await?;
    drop(conn);
    if linked {
        let shown = state
            .sso
            .provider(&identity.provider)
            .map_or(identity.provider.as_str(), |p| p.display_name.as_str());
        notify_linked(
            &state.mailer,
            &state.db,
            user,
            shown,
            "with your password, at the first sign-in",
            meta,
            now_micros,
        )
        .await;
    }
    Ok(linked)
}

/// The active account whose verified address `email` is (any case).
pub async fn account_with_verified_email(
    db: &Db,
    email: &str,
) -> Result<Option<crate::accounts::User>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT u.id FROM users u JOIN user_emails e ON e.user_id = u.id \
         WHERE e.email_key = $1 AND e.verified = 1 AND u.is_active = 1",
    )
    .bind(email.trim().to_lowercase())
    .fetch_optional(db.pool())
    .await?;
    match row {
        Some((id,)) => crate::accounts::find_by_id(db, &id).await,
        None => Ok(None),
    }
}

/// E-mails the account's owner that a provider was linked (by them, or by an admin).
pub async fn notify_linked(
    mailer: &crate::email::Mailer,
    db: &Db,
    user: &crate::accounts::User,
    provider: &str,
    by: &str,
    meta: &RequestMeta,
    now_micros: i64,
) {
    let Ok(Some(primary)) = crate::accounts::primary_email(db, &user.id).await else {
        return;
    };
    if !primary.verified {
        return;
    }
    let page =
        minijinja::context! { username => user.username.clone(), provider => provider, by => by };
    mailer
        .notify(
            db,
            (&user.id, &primary.email),
            "sso-linked",
            page,
            meta,
            now_micros,
        )
        .await;
}

/// Unlinks the account's identity of `provider`, with `account:sso:unlinked`; `false` when
/// there was none.
pub async fn unlink(
    db: &Db,
    user_id: &str,
    provider: &str,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let gone = sqlx::query("DELETE FROM sso_identities WHERE user_id = $1 AND provider = $2")
        .bind(user_id)
        .bind(provider)
        .execute(&mut *tx)
        .await?;
    if gone.rows_affected() == 0 {
        return Ok(false);
    }
    events::record(
        &mut tx,
        Source::User(user_id),
        EventTag::AccountSsoUnlinked,
        meta,
        now_micros,
        serde_json::json!({"provider": provider}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The providers an account signs in with (provider names).
pub async fn providers_of(db: &Db, user_id: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT provider FROM sso_identities WHERE user_id = $1 ORDER BY provider")
            .bind(user_id)
            .fetch_all(db.pool())
            .await?;
    Ok(rows.into_iter().map(|(p,)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::trusted_publishing::Issuer;

    fn provider() -> SsoProvider {
        SsoProvider {
            name: "corp".into(),
            display_name: "Corp".into(),
            issuer: Issuer("https://login.example.org".into()),
            client_id: "wharf".into(),
            client_secret: "secret".into(),
            email_domains: vec![],
            required_claims: Default::default(),
            emails_verified: false,
        }
    }

    fn claims(value: Value) -> Claims {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_tenant_is_required_and_an_unverified_address_stays_unverified() {
        let mut azure = provider();
        azure
            .required_claims
            .insert("tid".into(), "9188040d-6c67".into());
        let ours =
            claims(serde_json::json!({"sub": "a1", "tid": "9188040d-6c67", "email": "a@x.org"}));
        let found = identity(&azure, &ours).expect("our tenant");
        assert!(
            !found.email_verified,
            "no email_verified claim, and not vouched for"
        );
        azure.emails_verified = true;
        assert!(identity(&azure, &ours).expect("our tenant").email_verified);
        // A claim that says false stays false, whatever the setting.
        let mut denied = ours.clone();
        denied.insert("email_verified".into(), Value::Bool(false));
        assert!(
            !identity(&azure, &denied)
                .expect("our tenant")
                .email_verified
        );
        for other in [
            serde_json::json!({"sub": "a1", "tid": "0000-other", "email": "a@x.org"}),
            serde_json::json!({"sub": "a1", "email": "a@x.org"}),
            serde_json::json!({"sub": "a1", "tid": ["9188040d-6c67"], "email": "a@x.org"}),
        ] {
            let refused = identity(&azure, &claims(other)).unwrap_err();
            assert_eq!(refused.reason, "sso_claims");
            assert!(refused.detail.contains("tid"), "{}", refused.detail);
        }
    }

    #[test]
    fn the_claims_name_a_person_with_a_username_to_propose() {
        let claims = match serde_json::json!({
            "sub": "248289761001", "email": "Jane.Doe@example.org", "email_verified": true,
            "amr": ["pwd", "otp"], "auth_time": 1700000000
        }) {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let found = identity(&provider(), &claims).expect("identity");
        assert_eq!(found.proposed_username, "Jane.Doe");
        assert!(found.mfa && found.email_verified);
        assert_eq!(found.auth_time, Some(1_700_000_000));
        let mut bare = claims.clone();
        bare.remove("amr");
        bare.insert("email_verified".into(), Value::Bool(false));
        bare.insert("preferred_username".into(), "j doe!".into());
        let found = identity(&provider(), &bare).expect("identity");
        assert!(!found.mfa && !found.email_verified);
        assert_eq!(found.proposed_username, "jdoe");
        // One method, even a possession factor, is one factor.
        bare.insert("amr".into(), serde_json::json!(["otp"]));
        assert!(!identity(&provider(), &bare).expect("identity").mfa);
        bare.insert("amr".into(), serde_json::json!(["hwk", "pin"]));
        assert!(identity(&provider(), &bare).expect("identity").mfa);
        bare.remove("sub");
        assert!(identity(&provider(), &bare).is_err());
        // RFC 7636's example.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
