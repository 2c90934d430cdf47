//! The exchange (`warehouse/oidc/views.py::mint_token_from_oidc`): an ID token in, a
//! short-lived upload token out, or a refusal with PyPI's code and a description the CI job
//! prints. The ID token's `jti`, the minted token's row and the projects' events are written
//! in one transaction.

use serde_json::Value;

use super::claims::{self, Claims};
use super::{Issuers, jwt, pending, publishers, replay, tokens};
use crate::db::Db;
use crate::events::{self, EventTag, RequestMeta, Source};
use crate::signing::ServerKey;

/// A refusal in PyPI's shape: `{"code": …, "description": …}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub description: String,
}

fn refuse(code: &'static str, description: impl Into<String>) -> Refusal {
    Refusal {
        code,
        description: description.into(),
    }
}

/// What the exchange needs of the server.
pub struct Exchange<'a> {
    pub db: &'a Db,
    pub keys: &'a ServerKey,
    pub issuers: &'a Issuers,
    pub audience: &'a str,
    /// The location minted tokens name (the index's host).
    pub location: &'a str,
    pub meta: &'a RequestMeta,
    pub now_micros: i64,
    /// The index proxies an upstream (a pending publisher may not take a proxied name).
    pub proxying: bool,
    /// The index requires 2FA (of a pending publisher's user, as of an uploader).
    pub require_2fa: bool,
}

/// The body's token: `{"token": "<JWT>"}`.
fn payload(body: &[u8]) -> Result<String, Refusal> {
    let invalid = || {
        refuse(
            "invalid-payload",
            "the request body must be a JSON object {\"token\": \"<the CI job's ID token>\"}",
        )
    };
    match serde_json::from_slice::<Value>(body).map_err(|_| invalid())? {
        Value::Object(map) => match map.get("token") {
            Some(Value::String(token)) => Ok(token.clone()),
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

/// Exchanges the ID token in `body` for an upload token.
pub async fn mint(
    exchange: &Exchange<'_>,
    body: &[u8],
) -> Result<Result<tokens::Minted, Refusal>, sqlx::Error> {
    let token = match payload(body) {
        Ok(token) => token,
        Err(refusal) => return Ok(Err(refusal)),
    };
    // The issuer picks the keys: read it before anything is verified.
    let Some(issuer) = jwt::unverified_claims(&token)
        .and_then(|c| c.get("iss").and_then(Value::as_str).map(str::to_owned))
    else {
        return Ok(Err(refuse("invalid-payload", "malformed JWT")));
    };
    let Some(kind) = exchange.issuers.kind_of(&issuer) else {
        return Ok(Err(refuse(
            "invalid-payload",
            "unknown trusted publishing issuer",
        )));
    };
    let now_secs = exchange.now_micros.div_euclid(1_000_000);
    let audience = exchange.issuers.audience_for(&issuer, exchange.audience);
    let claims =
        match jwt::verify(&exchange.issuers.keys, &token, &issuer, audience, now_secs).await {
            Ok(claims) => claims,
            Err(reason) => {
                return Ok(Err(refuse(
                    "invalid-token",
                    format!("malformed or invalid token: {reason}"),
                )));
            }
        };
    // The replay check needs one string per token: any other jti could collide. Google's
    // tokens (and some CI systems') have none: the digest of the signed part (not of the
    // signature, which ES256 lets anyone rewrite) stands in for it.
    let jti = match claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= 256 => jti.clone(),
        None if matches!(kind, claims::Kind::Google | claims::Kind::Generic) => {
            use sha2::Digest;
            let signed = token
                .rsplit_once('.')
                .map_or(token.as_str(), |(signed, _)| signed);
            format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(signed.as_bytes()))
            )
        }
        _ => {
            return Ok(Err(refuse(
                "invalid-token",
                "malformed or invalid token: the jti claim must be a non-empty string",
            )));
        }
    };
    let reused = || refuse("invalid-reuse-token", "invalid token: already used");
    if replay::seen(exchange.db, &issuer, &jti).await? {
        return Ok(Err(reused()));
    }
    // As verification read it (an integer or a number of seconds); verified present.
    let exp = crate::oidc::jwt::seconds(&claims, "exp")
        .ok()
        .flatten()
        .unwrap_or(now_secs);
    let required = exchange
        .issuers
        .generic(&issuer)
        .map(|g| g.claims.clone())
        .unwrap_or_default();

    // A pending publisher the claims satisfy creates its project first (Warehouse looks for
    // one before the registered publishers too). If it cannot (its name was taken, its
    // user disabled…), it is dropped and the registered publishers are looked at instead; if
    // a parallel exchange created the project first, the same.
    let mut pending_refused: Option<String> = None;
    let mut pending_done = false;
    loop {
        let found = match (
            pending_done,
            find_pending(exchange.db, kind, &issuer, &claims).await?,
        ) {
            (false, Some(pending)) => Found::Pending(Box::new(pending)),
            _ => match find_publishers(exchange.db, kind, &issuer, &claims, &required).await? {
                Ok(found) => Found::Registered(found),
                Err(mismatch) => {
                    let description = match &pending_refused {
                        Some(reason) => format!(
                            "valid token, but the pending publisher cannot create its project ({reason}) and no publisher matches ({mismatch})"
                        ),
                        None => format!("valid token, but no corresponding publisher ({mismatch})"),
                    };
                    return Ok(Err(refuse("invalid-publisher", description)));
                }
            },
        };
        let mut tx = exchange.db.begin().await?;
        // Atomically: of two exchanges of one token, one commits and the other sees the row.
        if !replay::claim(&mut tx, &issuer, &jti, exp).await? {
            return Ok(Err(reused()));
        }
        let mut batch = events::Batch::new(exchange.meta, exchange.now_micros);
        let matched = match found {
            Found::Registered(matched) => matched,
            Found::Pending(pending) => {
                let by = publishers::By {
                    username: None,
                    via: "trusted publishing",
                    meta: exchange.meta,
                    now_micros: exchange.now_micros,
                };
                match pending::reify(
                    &mut tx,
                    &mut batch,
                    &pending,
                    exchange.proxying,
                    exchange.require_2fa,
                    &by,
                )
                .await
                {
                    Ok(publisher) => vec![publisher],
                    Err(pending::ReifyError::Gone) => {
                        drop(tx);
                        pending_done = true;
                        continue;
                    }
                    Err(pending::ReifyError::Refused(reason)) => {
                        drop(tx);
                        tracing::info!(reason = %reason, "a pending publisher cannot create its project: dropped");
                        pending::drop_refused(
                            exchange.db,
                            &pending,
                            &reason,
                            exchange.meta,
                            exchange.now_micros,
                        )
                        .await?;
                        pending_refused = Some(reason);
                        pending_done = true;
                        continue;
                    }
                    Err(pending::ReifyError::Database(e)) => return Err(e),
                }
            }
        };
        return finish_mint(exchange, tx, batch, &claims, matched, now_secs).await;
    }
}

/// Mints for every publisher the claims satisfy (the first, most specific one names the
/// token): the token may upload to all their projects. GitHub owner ids are pinned here at
/// the first exchange.
async fn finish_mint(
    exchange: &Exchange<'_>,
    mut tx: crate::db::Tx,
    mut batch: events::Batch<'_>,
    claims: &Claims,
    matched: Vec<claims::Publisher>,
    now_secs: i64,
) -> Result<Result<tokens::Minted, Refusal>, sqlx::Error> {
    let mut kept: Vec<claims::Publisher> = Vec::new();
    for mut publisher in matched {
        if let (claims::Kind::GitHub, None, Some(owner_id)) = (
            publisher.kind,
            &publisher.owner_id,
            claims.get("repository_owner_id").and_then(Value::as_str),
        ) {
            // Of two first exchanges with different owners, only the one that pinned it
            // mints; a twin already pinned to this owner takes the row's projects.
            match publishers::pin_owner_id(&mut tx, &publisher, owner_id).await? {
                Some(id) => {
                    publisher.id = id;
                    publisher.owner_id = Some(owner_id.to_owned());
                }
                None => continue,
            }
        }
        if !kept.iter().any(|k| k.id == publisher.id) {
            kept.push(publisher);
        }
    }
    let Some(publisher) = kept.first().cloned() else {
        return Ok(Err(refuse(
            "invalid-publisher",
            "valid token, but no corresponding publisher (repository_owner_id does not match)",
        )));
    };
    let mut projects: Vec<(String, String)> = Vec::new();
    for each in &kept {
        for project in publishers::projects_of(&mut tx, &each.id).await? {
            if !projects.contains(&project) {
                projects.push(project);
            }
        }
    }
    if projects.is_empty() {
        return Ok(Err(refuse(
            "invalid-publisher",
            "valid token, but no corresponding publisher (it has no projects)",
        )));
    }
    let project_ids: Vec<String> = projects.iter().map(|(id, _)| id.clone()).collect();
    let stored = publisher.stored_claims(claims);
    let minted = tokens::mint_in(
        &mut tx,
        exchange.keys,
        exchange.location,
        &kept,
        &project_ids,
        &stored,
        now_secs,
    )
    .await?;
    let reusable = matches!(
        (claims.get("job_workflow_ref"), claims.get("workflow_ref")),
        (Some(job), Some(caller)) if job != caller
    );
    for (project_id, _) in &projects {
        batch.add(
            Source::Project(project_id),
            EventTag::ProjectShortLivedApiTokenAdded,
            serde_json::json!({
                "expires": minted.expires,
                "publisher_name": publisher.kind.display(),
                "publisher_url": publisher.url(),
                "publisher_id": publisher.id,
                "specifier": publisher.specifier(),
                "reusable_workflow_used": reusable,
                "claims": stored,
            }),
        );
    }
    batch.flush(&mut tx).await?;
    tx.commit().await?;
    Ok(Ok(minted))
}

/// The publishers a token's claims satisfy.
enum Found {
    /// The most specific first.
    Registered(Vec<claims::Publisher>),
    /// Its exchange creates the project first.
    Pending(Box<pending::Pending>),
}

/// The pending publisher the claims satisfy, if any: as for registered ones, the most
/// specific of the candidates, whose every check passes.
async fn find_pending(
    db: &Db,
    kind: claims::Kind,
    issuer: &str,
    claims: &Claims,
) -> Result<Option<pending::Pending>, sqlx::Error> {
    let Ok(lookup) = claims::lookup(kind, claims) else {
        return Ok(None);
    };
    let candidates: Vec<pending::Pending> = pending::candidates(db, kind, issuer, &lookup)
        .await?
        .into_iter()
        .filter(|p| claims::matches_lookup(&p.publisher, &lookup, claims))
        .collect();
    let publishers: Vec<claims::Publisher> =
        candidates.iter().map(|p| p.publisher.clone()).collect();
    let Ok(chosen) = claims::most_specific(&publishers, claims) else {
        return Ok(None);
    };
    if claims::verify(chosen, claims).is_err() {
        return Ok(None);
    }
    Ok(candidates.into_iter().find(|p| p.publisher.id == chosen.id))
}

/// Warehouse's `find_publisher`, for every publisher: the candidates the claims name, each
/// of whose checks pass, the most specific one first. A generic issuer's publishers must
/// name every claim its setting lists now (`required`).
async fn find_publishers(
    db: &Db,
    kind: claims::Kind,
    issuer: &str,
    claims: &Claims,
    required: &[String],
) -> Result<Result<Vec<claims::Publisher>, claims::Mismatch>, sqlx::Error> {
    let lookup = match claims::lookup(kind, claims) {
        Ok(lookup) => lookup,
        Err(mismatch) => return Ok(Err(mismatch)),
    };
    let candidates: Vec<claims::Publisher> = publishers::candidates(db, kind, issuer, &lookup)
        .await?
        .into_iter()
        .filter(|p| required.iter().all(|c| p.claims.contains_key(c)))
        .filter(|p| claims::matches_lookup(p, &lookup, claims))
        .collect();
    let first = match claims::most_specific(&candidates, claims) {
        Ok(publisher) => publisher.clone(),
        Err(mismatch) => return Ok(Err(mismatch)),
    };
    if let Err(mismatch) = claims::verify(&first, claims) {
        return Ok(Err(mismatch));
    }
    let mut all = vec![first.clone()];
    all.extend(
        candidates
            .into_iter()
            .filter(|p| p.id != first.id && claims::verify(p, claims).is_ok()),
    );
    Ok(Ok(all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_one_string_token() {
        assert_eq!(payload(br#"{"token": "a.b.c"}"#), Ok("a.b.c".to_owned()));
        for body in [&b"{}"[..], br#"{"token": 5}"#, b"[]", b"not json", b""] {
            assert_eq!(payload(body).unwrap_err().code, "invalid-payload");
        }
    }
}
