//! The upload tokens minted for publishers: `pypi-` macaroons like users' tokens, with
//! Warehouse's caveats `[OIDCPublisher(id), ProjectID(its projects), Expiration(15 min)]`,
//! each with its own root key sealed under the server key. They live in `oidc_tokens`, apart
//! from users' tokens, so no listing shows them; an upload presenting one is identified as the
//! publisher, and the OIDCPublisher caveat passes only for the projects it has at that time.

use rand::RngCore;
use sqlx::AnyConnection;
use wharf_macaroon::{Caveat, Context, Macaroon, ProjectRef, PublisherRef};

use super::claims::{Kind, Publisher};
use crate::db::Db;
use crate::packaging::Project;
use crate::signing::ServerKey;

/// How long a minted token is valid (Warehouse: 15 minutes).
pub const LIFETIME_SECS: i64 = 900;
/// What the server key is derived for to seal these tokens' root keys.
const KEY_SEALING: &str = "oidc-token-root-key";

/// A token just minted: the secret (never stored) and when it expires (unix seconds).
pub struct Minted {
    pub id: String,
    pub token: String,
    pub expires: i64,
}

/// Mints a token for `publishers`, valid for `project_ids`, and stores it in the caller's
/// transaction with the claims the uploads will record.
pub async fn mint_in(
    conn: &mut AnyConnection,
    keys: &ServerKey,
    location: &str,
    publishers: &[Publisher],
    project_ids: &[String],
    stored_claims: &serde_json::Value,
    now_secs: i64,
) -> Result<Minted, sqlx::Error> {
    // The first names the token; the others add their projects.
    let Some(publisher) = publishers.first() else {
        return Err(sqlx::Error::Protocol(
            "a token is minted for a publisher".into(),
        ));
    };
    let also: Vec<&str> = publishers.iter().skip(1).map(|p| p.id.as_str()).collect();
    let id = uuid::Uuid::new_v4().to_string();
    let expires = now_secs + LIFETIME_SECS;
    let caveats = [
        Caveat::OidcPublisher(publisher.id.clone()),
        Caveat::ProjectId(project_ids.to_vec()),
        Caveat::Expiration {
            expires_at: expires,
            not_before: now_secs,
        },
    ];
    let caveat_json: Vec<String> = caveats.iter().map(Caveat::to_json).collect();
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let mut macaroon = Macaroon::new(location, id.as_bytes(), &key);
    for caveat in &caveat_json {
        macaroon.add_first_party_caveat(caveat.as_bytes());
    }
    sqlx::query(
        "INSERT INTO oidc_tokens (id, publisher_id, created, expires, caveats, claims, key, also_publishers) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&publisher.id)
    .bind(now_secs * 1_000_000)
    .bind(expires * 1_000_000)
    .bind(serde_json::to_string(&caveat_json).unwrap_or_default())
    .bind(stored_claims.to_string())
    .bind(keys.seal(KEY_SEALING, id.as_bytes(), &key))
    .bind(also.join(","))
    .execute(conn)
    .await?;
    Ok(Minted {
        id,
        token: macaroon.to_token(),
        expires,
    })
}

/// A presented publisher token whose signature checks out.
pub struct PublisherToken {
    pub id: String,
    pub publisher: Publisher,
    /// What the exchange kept of the CI run (ref, sha, run id).
    pub claims: serde_json::Value,
    macaroon: Macaroon,
    key: Vec<u8>,
    stored_caveats: Vec<String>,
    /// The other publishers the exchange's claims satisfied (of other projects): the token
    /// may upload to their projects too, while they have them.
    also: Vec<String>,
}

type TokenRow = (
    String,
    String,
    Vec<u8>,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
);

/// Finds a publisher token; `None` when `token` is not one (or its signature is wrong).
pub async fn lookup(
    db: &Db,
    keys: &ServerKey,
    token: &str,
) -> Result<Option<PublisherToken>, sqlx::Error> {
    let Ok(macaroon) = Macaroon::from_token(token) else {
        return Ok(None);
    };
    let Ok(id) = std::str::from_utf8(macaroon.identifier()) else {
        return Ok(None);
    };
    if uuid::Uuid::parse_str(id).is_err() {
        return Ok(None);
    }
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT t.caveats, t.claims, t.key, p.id, p.kind, p.issuer, p.owner, p.repository, p.workflow, \
         p.environment, p.owner_id, p.claims, t.also_publishers FROM oidc_tokens t JOIN oidc_publishers p ON p.id = t.publisher_id \
         WHERE t.id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    let Some((
        caveats,
        claims,
        sealed,
        publisher_id,
        kind,
        issuer,
        owner,
        repository,
        workflow,
        environment,
        owner_id,
        publisher_claims,
        also,
    )) = row
    else {
        return Ok(None);
    };
    let (Some(key), Some(kind)) = (
        keys.open(KEY_SEALING, id.as_bytes(), &sealed),
        Kind::parse(&kind),
    ) else {
        return Ok(None);
    };
    if !macaroon.signature_matches(&key) {
        return Ok(None);
    }
    Ok(Some(PublisherToken {
        id: id.to_owned(),
        publisher: Publisher {
            id: publisher_id,
            kind,
            issuer,
            owner,
            repository,
            workflow,
            environment,
            owner_id,
            claims: super::publishers::claims_from_column(&publisher_claims),
        },
        claims: serde_json::from_str(&claims).unwrap_or_default(),
        macaroon,
        key,
        stored_caveats: serde_json::from_str(&caveats).unwrap_or_default(),
        also: also
            .split(',')
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect(),
    }))
}

/// Burns a minted token before it expires (`POST /_/oidc/burn-token`, which `uv publish`
/// calls after its uploads): its row goes, so it no longer authenticates. `false` when the
/// token is not a live one of ours.
pub async fn burn(db: &Db, keys: &ServerKey, token: &str) -> Result<bool, sqlx::Error> {
    let Some(found) = lookup(db, keys, token).await? else {
        return Ok(false);
    };
    let gone = sqlx::query("DELETE FROM oidc_tokens WHERE id = $1")
        .bind(&found.id)
        .execute(db.pool())
        .await?;
    Ok(gone.rows_affected() == 1)
}

impl PublisherToken {
    /// Checks every caveat for an upload to `project` at `now_secs`, against the projects the
    /// publisher has now. The error is Warehouse's reason.
    pub async fn verify(
        &self,
        db: &Db,
        project: &Project,
        now_secs: i64,
    ) -> Result<Result<(), String>, sqlx::Error> {
        let mut conn = db.pool().acquire().await?;
        let mut project_ids: Vec<String> = Vec::new();
        for publisher in std::iter::once(&self.publisher.id).chain(&self.also) {
            for (id, _) in super::publishers::projects_of(&mut conn, publisher).await? {
                if !project_ids.contains(&id) {
                    project_ids.push(id);
                }
            }
        }
        let context = Context {
            now: now_secs,
            user_id: "",
            project: Some(ProjectRef {
                normalized_name: &project.normalized_name,
                id: &project.id,
            }),
            publisher: Some(PublisherRef {
                id: &self.publisher.id,
                project_ids: &project_ids,
            }),
        };
        Ok(
            wharf_macaroon::verify(&self.macaroon, &self.key, &self.stored_caveats, &context)
                .map_err(|e| e.to_string()),
        )
    }

    /// What a file event records of the upload's publisher and CI run.
    pub fn event_details(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.publisher.id,
            "publisher": self.publisher.kind.display(),
            "specifier": self.publisher.specifier(),
            "url": self.publisher.url(),
            "claims": self.claims,
        })
    }
}
