//! What a user agent string says, for the audit log: the installer and its version for the
//! packaging tools (pip, uv, twine, poetry, pdm, hatch), or the browser for people.

use serde_json::{Value, json};

const INSTALLERS: &[&str] = &[
    "pip",
    "uv",
    "twine",
    "poetry",
    "pdm",
    "hatch",
    "setuptools",
    "wharf",
];

pub fn parse(user_agent: &str) -> Value {
    let first = user_agent.split_whitespace().next().unwrap_or_default();
    if let Some((name, version)) = first.split_once('/') {
        let lower = name.to_ascii_lowercase();
        if let Some(installer) = INSTALLERS.iter().find(|i| **i == lower) {
            return json!({"installer": installer, "version": version});
        }
    }
    if user_agent.starts_with("Mozilla/") {
        // The order matters: Edge and Chrome also claim Safari, Chrome-based browsers Chrome.
        for (token, browser) in [
            ("Edg/", "Edge"),
            ("OPR/", "Opera"),
            ("Firefox/", "Firefox"),
            ("Chrome/", "Chrome"),
            ("Chromium/", "Chromium"),
            ("Version/", "Safari"),
        ] {
            if let Some(at) = user_agent.find(token) {
                let version = user_agent[at + token.len()..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap_or_default();
                return json!({"installer": "Browser", "browser": browser, "version": version});
            }
        }
        return json!({"installer": "Browser"});
    }
    json!({"installer": "other"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installers_and_browsers() {
        assert_eq!(
            parse("pip/24.0 {\"ci\":null,\"python\":\"3.11.7\"}"),
            json!({"installer": "pip", "version": "24.0"})
        );
        assert_eq!(
            parse("uv/0.13.9"),
            json!({"installer": "uv", "version": "0.13.9"})
        );
        assert_eq!(
            parse("twine/7.0.0 CPython/3.11.7"),
            json!({"installer": "twine", "version": "7.0.0"})
        );
        assert_eq!(
            parse(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
            ),
            json!({"installer": "Browser", "browser": "Chrome", "version": "156"})
        );
        assert_eq!(
            parse("Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"),
            json!({"installer": "Browser", "browser": "Firefox", "version": "140"})
        );
        assert_eq!(parse("curl/8.5.0"), json!({"installer": "other"}));
    }
}
