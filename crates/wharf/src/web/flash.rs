//! One-shot messages shown on the page after a form redirects ("Password changed"). Kept in a
//! short-lived cookie signed with the server key, so no one else can put words on our pages.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::signing::ServerKey;

pub const COOKIE: &str = "wharf_flash";
const PURPOSE: &str = "flash";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    /// `success` or `error`.
    pub level: String,
    pub text: String,
}

impl Flash {
    pub fn success(text: impl Into<String>) -> Flash {
        Flash {
            level: "success".to_owned(),
            text: text.into(),
        }
    }

    pub fn error(text: impl Into<String>) -> Flash {
        Flash {
            level: "error".to_owned(),
            text: text.into(),
        }
    }
}

pub fn encode(keys: &ServerKey, flashes: &[Flash]) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(flashes).unwrap_or_default());
    let tag = keys.tag(PURPOSE, &body);
    format!("{body}.{tag}")
}

pub fn decode(keys: &ServerKey, value: &str) -> Vec<Flash> {
    let Some((body, tag)) = value.split_once('.') else {
        return Vec::new();
    };
    if !keys.check_tag(PURPOSE, body, tag) {
        return Vec::new();
    }
    URL_SAFE_NO_PAD
        .decode(body)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

crate::site::template_value!(Flash);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flashes_round_trip_and_forgeries_are_dropped() {
        let keys = ServerKey::from_bytes([1; 32]);
        let value = encode(&keys, &[Flash::success("Saved")]);
        assert_eq!(decode(&keys, &value), vec![Flash::success("Saved")]);
        let other = ServerKey::from_bytes([2; 32]);
        assert!(decode(&other, &value).is_empty());
        assert!(decode(&keys, "garbage").is_empty());
    }
}
