//! Verifying an ID token: its signature (RS256 or ES256, with the issuer's key named by
//! `kid`), then its registered claims as Warehouse requires them (`iss`, `aud` — one
//! string, ours —, `exp`, `iat`, and `nbf` when present) with [`LEEWAY_SECS`] of clock skew.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::claims::Claims;
use super::keys::KeyCache;

/// Clock skew tolerated on `exp`, `iat` and `nbf` (Warehouse's `_JWT_LEEWAY`). A used `jti`
/// is kept past `exp` for longer than this.
pub const LEEWAY_SECS: i64 = 30;

/// The claims of a token whose signature is not checked yet: only to pick its issuer.
pub fn unverified_claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(claims) => Some(claims),
        _ => None,
    }
}

/// Checks the signature and the registered claims; the error says why, for the CI job.
pub async fn verify(
    keys: &KeyCache,
    token: &str,
    issuer: &str,
    audience: &str,
    now_secs: i64,
) -> Result<Claims, String> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| "its header is malformed".to_owned())?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(format!(
            "it is signed with {:?}; only RS256 and ES256 are accepted",
            header.alg
        ));
    }
    let kid = header
        .kid
        .ok_or_else(|| "its header names no key (kid)".to_owned())?;
    let key = keys
        .key(issuer, &kid, now_secs)
        .await
        .map_err(|e| e.to_string())?;
    if key.algorithm != header.alg {
        return Err(format!(
            "key {kid:?} verifies {:?}, not {:?}",
            key.algorithm, header.alg
        ));
    }
    // The signature only: the claims are checked below, with our messages.
    let mut validation = Validation::new(key.algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| match e
        .kind()
    {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => {
            "its signature does not verify".to_owned()
        }
        _ => "it is malformed".to_owned(),
    })?;
    check_registered(&data.claims, issuer, audience, now_secs)?;
    Ok(data.claims)
}

/// A NumericDate claim, as unix seconds.
pub fn seconds(claims: &Claims, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_i64()
            .or_else(|| value.as_f64().map(|f| f.floor() as i64))
            .map(Some)
            .ok_or_else(|| format!("its {name} claim is not a time")),
    }
}

/// `iss`, `aud`, `exp`, `iat` required; `nbf` checked when present.
pub fn check_registered(
    claims: &Claims,
    issuer: &str,
    audience: &str,
    now_secs: i64,
) -> Result<(), String> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(format!("it was not issued by {issuer}"));
    }
    // One audience, ours: a token meant for several services is refused.
    match claims.get("aud") {
        Some(Value::String(aud)) if aud == audience => {}
        _ => {
            return Err(format!(
                "its audience (aud) is not {audience:?}, this index's (GET /_/oidc/audience)"
            ));
        }
    }
    let exp = seconds(claims, "exp")?.ok_or("it has no exp claim")?;
    let iat = seconds(claims, "iat")?.ok_or("it has no iat claim")?;
    if exp.saturating_add(LEEWAY_SECS) <= now_secs {
        return Err("it has expired".to_owned());
    }
    if iat > now_secs.saturating_add(LEEWAY_SECS) {
        return Err("it was issued in the future (iat)".to_owned());
    }
    if let Some(nbf) = seconds(claims, "nbf")?
        && nbf > now_secs.saturating_add(LEEWAY_SECS)
    {
        return Err("it is not valid yet (nbf)".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://token.actions.githubusercontent.com";

    fn claims(value: Value) -> Claims {
        match value {
            Value::Object(map) => map,
            _ => panic!("an object"),
        }
    }

    #[test]
    fn registered_claims_are_checked_with_leeway() {
        let now = 1_000_000;
        let good = serde_json::json!({"iss": ISS, "aud": "wharf", "exp": now + 300, "iat": now, "nbf": now});
        check_registered(&claims(good.clone()), ISS, "wharf", now).expect("good");
        let with = |key: &str, value: Value| {
            let mut changed = claims(good.clone());
            changed.insert(key.into(), value);
            changed
        };
        let refused = |c: Claims| check_registered(&c, ISS, "wharf", now).unwrap_err();
        assert!(refused(with("iss", "https://gitlab.com".into())).contains("not issued by"));
        assert!(refused(with("aud", "pypi".into())).contains("audience"));
        assert!(refused(with("aud", serde_json::json!(["wharf", "other"]))).contains("audience"));
        // Expired 29 s ago is within the leeway; 30 s is not.
        check_registered(&with("exp", (now - 29).into()), ISS, "wharf", now).expect("leeway");
        assert_eq!(refused(with("exp", (now - 30).into())), "it has expired");
        check_registered(&with("nbf", (now + 30).into()), ISS, "wharf", now).expect("leeway");
        assert_eq!(
            refused(with("nbf", (now + 31).into())),
            "it is not valid yet (nbf)"
        );
        assert!(refused(with("iat", (now + 60).into())).contains("iat"));
        assert!(refused(with("exp", "soon".into())).contains("not a time"));
        let mut no_exp = claims(good.clone());
        no_exp.remove("exp");
        assert_eq!(refused(no_exp), "it has no exp claim");
        let mut no_nbf = claims(good);
        no_nbf.remove("nbf");
        check_registered(&no_nbf, ISS, "wharf", now).expect("nbf is optional");
    }

    #[test]
    fn the_issuer_is_read_before_the_signature_is_checked() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://gitlab.com"}"#);
        let token = format!("e30.{payload}.c2ln");
        let claims = unverified_claims(&token).expect("claims");
        assert_eq!(claims["iss"], "https://gitlab.com");
        assert!(unverified_claims("not a jwt").is_none());
        assert!(unverified_claims(&format!("e30.{payload}")).is_none());
        assert!(unverified_claims("e30.e30.x.y").is_none());
    }
}
