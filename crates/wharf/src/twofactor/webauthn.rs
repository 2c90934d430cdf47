//! WebAuthn with webauthn-rs: security keys (a second factor) and passkeys (discoverable
//! credentials that sign in alone, as two factors). Credentials are found by their id, their
//! sign counters checked and kept. A ceremony's state waits in the database between the
//! options the browser gets and the answer it sends, for 5 minutes at most.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use webauthn_rs::prelude::{Credential, Url, Webauthn, WebauthnBuilder};

use crate::config::Settings;
use crate::db::{Db, is_unique_violation};
use crate::events::{self, EventTag, RequestMeta, Source};

/// How long a ceremony may take (the same as the 2FA step).
pub const CEREMONY_SECS: i64 = 300;

/// The relying party: the host of the base URL, and the base URL as the origin.
pub fn relying_party(settings: &Settings) -> anyhow::Result<Webauthn> {
    let origin = Url::parse(&settings.base_url())?;
    let rp_id = match origin.host() {
        Some(url::Host::Domain(domain)) => domain.to_owned(),
        _ => anyhow::bail!("the base URL {origin} has no domain name, which WebAuthn requires"),
    };
    WebauthnBuilder::new(&rp_id, &origin)
        .map_err(|e| anyhow::anyhow!("WebAuthn cannot use {origin}: {e}"))?
        .rp_name(crate::site::SITE_NAME)
        .build()
        .map_err(|e| anyhow::anyhow!("WebAuthn cannot use {origin}: {e}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    SecurityKey,
    Passkey,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SecurityKey => "security_key",
            Kind::Passkey => "passkey",
        }
    }

    /// `passkey`, or else a security key (as a form or a stored row names it).
    pub fn parse(s: &str) -> Kind {
        if s == "passkey" {
            Kind::Passkey
        } else {
            Kind::SecurityKey
        }
    }
}

#[derive(Clone, Debug)]
pub struct Stored {
    pub id: String,
    pub user_id: String,
    pub kind: Kind,
    pub label: String,
    pub credential: Credential,
    pub created: i64,
    pub last_used: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    pub id: String,
    pub kind: Kind,
    pub label: String,
    pub created: i64,
    pub last_used: Option<i64>,
}

crate::site::template_value!(Listed);

impl Stored {
    pub fn listed(&self) -> Listed {
        Listed {
            id: self.id.clone(),
            kind: self.kind,
            label: self.label.clone(),
            created: self.created,
            last_used: self.last_used,
        }
    }
}

type Row = (String, String, String, String, String, i64, Option<i64>);

const COLUMNS: &str = "id, user_id, kind, label, credential, created, last_used";

fn from_row((id, user_id, kind, label, credential, created, last_used): Row) -> Option<Stored> {
    Some(Stored {
        id,
        user_id,
        kind: Kind::parse(&kind),
        label,
        credential: serde_json::from_str(&credential).ok()?,
        created,
        last_used,
    })
}

pub fn encode_id(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

pub async fn credentials_of(db: &Db, user_id: &str) -> Result<Vec<Stored>, sqlx::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM webauthn_credentials WHERE user_id = $1 ORDER BY created");
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().filter_map(from_row).collect())
}

/// The credential an assertion names, by its id.
pub async fn find(db: &Db, raw_credential_id: &[u8]) -> Result<Option<Stored>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM webauthn_credentials WHERE credential_id = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(encode_id(raw_credential_id))
        .fetch_optional(db.pool())
        .await?;
    Ok(row.and_then(from_row))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("Label '{0}' already in use: choose another one.")]
    LabelTaken(String),
    #[error("This security key is registered already.")]
    CredentialTaken,
    #[error("Internal Server Error")]
    Database,
}

/// Stores a new credential and records `account:two_factor:method_added`.
pub async fn add(
    db: &Db,
    user_id: &str,
    kind: Kind,
    label: &str,
    credential: &Credential,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<(), StoreError> {
    let run = async {
        let mut tx = db.begin().await?;
        let taken: Option<(String,)> =
            sqlx::query_as("SELECT id FROM webauthn_credentials WHERE user_id = $1 AND label = $2")
                .bind(user_id)
                .bind(label)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Ok(Err(StoreError::LabelTaken(label.to_owned())));
        }
        let inserted = sqlx::query(
            "INSERT INTO webauthn_credentials (id, user_id, kind, label, credential_id, credential, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(user_id)
        .bind(kind.as_str())
        .bind(label)
        .bind(encode_id(credential.cred_id.as_ref()))
        .bind(serde_json::to_string(credential).unwrap_or_default())
        .bind(now_micros)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(Err(StoreError::CredentialTaken)),
            Err(e) => return Err(e),
        }
        events::record(
            &mut tx,
            Source::User(user_id),
            EventTag::AccountTwoFactorMethodAdded,
            meta,
            now_micros,
            json!({"method": "webauthn", "label": label, "kind": kind.as_str()}),
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    };
    run.await.unwrap_or_else(|e: sqlx::Error| {
        tracing::error!(error = %e, "cannot store a WebAuthn credential");
        Err(StoreError::Database)
    })
}

/// Removes one of the user's credentials. Returns its label.
pub async fn remove(
    db: &Db,
    user_id: &str,
    id: &str,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let row: Option<(String, String)> = sqlx::query_as(
        "DELETE FROM webauthn_credentials WHERE id = $1 AND user_id = $2 RETURNING label, kind",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((label, kind)) = &row {
        events::record(
            &mut tx,
            Source::User(user_id),
            EventTag::AccountTwoFactorMethodRemoved,
            meta,
            now_micros,
            json!({"method": "webauthn", "label": label, "kind": kind}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(row.map(|(label, _)| label))
}

/// Keeps the credential's new sign counter after a successful assertion.
pub async fn touch(db: &Db, stored: &Stored, now_micros: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webauthn_credentials SET credential = $1, last_used = $2 WHERE id = $3")
        .bind(serde_json::to_string(&stored.credential).unwrap_or_default())
        .bind(now_micros)
        .bind(&stored.id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Keeps a ceremony's state; returns the id the browser sends back with its answer.
pub async fn save_ceremony<T: Serialize>(
    db: &Db,
    user_id: Option<&str>,
    purpose: &str,
    state: &T,
    now_micros: i64,
) -> Result<String, sqlx::Error> {
    let id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    // Ceremonies nobody finished are forgotten here rather than by a job.
    sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires <= $1")
        .bind(now_micros)
        .execute(db.pool())
        .await?;
    sqlx::query(
        "INSERT INTO webauthn_ceremonies (id_hash, user_id, purpose, state, expires) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(crate::accounts::session::hash_id(&id))
    .bind(user_id)
    .bind(purpose)
    .bind(serde_json::to_string(state).unwrap_or_default())
    .bind(now_micros + CEREMONY_SECS * 1_000_000)
    .execute(db.pool())
    .await?;
    Ok(id)
}

/// Takes (and ends) a ceremony: `None` if unknown, expired, for another purpose or user.
pub async fn take_ceremony<T: DeserializeOwned>(
    db: &Db,
    id: &str,
    user_id: Option<&str>,
    purpose: &str,
    now_micros: i64,
) -> Result<Option<T>, sqlx::Error> {
    let row: Option<(Option<String>, String, String, i64)> = sqlx::query_as(
        "DELETE FROM webauthn_ceremonies WHERE id_hash = $1 RETURNING user_id, purpose, state, expires",
    )
    .bind(crate::accounts::session::hash_id(id))
    .fetch_optional(db.pool())
    .await?;
    Ok(row.and_then(|(owner, kind, state, expires)| {
        (owner.as_deref() == user_id && kind == purpose && expires > now_micros)
            .then(|| serde_json::from_str(&state).ok())
            .flatten()
    }))
}
