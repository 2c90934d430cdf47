//! PEP 691 content negotiation, as warehouse does it with WebOb's `acceptable_offers`: q-values
//! decide, ties go to the earlier offer, and no match means `text/html` (never 406).

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Html,
    V1Html,
    V1Json,
}

const OFFERS: [(Format, &str, &str); 3] = [
    (Format::Html, "text", "html"),
    (Format::V1Html, "application", "vnd.pypi.simple.v1+html"),
    (Format::V1Json, "application", "vnd.pypi.simple.v1+json"),
];

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::V1Html => "application/vnd.pypi.simple.v1+html",
            Format::V1Json => "application/vnd.pypi.simple.v1+json",
        }
    }

    pub fn is_json(self) -> bool {
        self == Format::V1Json
    }
}

pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Format::Html;
    };
    let ranges: Vec<(String, String, f32)> = accept.split(',').filter_map(parse_range).collect();
    let mut best = (Format::Html, 0.0f32);
    for (format, kind, subtype) in OFFERS {
        // The most specific matching range decides the offer's quality.
        let quality = ranges
            .iter()
            .filter_map(|(k, s, q)| {
                let specificity = match (k.as_str(), s.as_str()) {
                    (k, s) if k == kind && (s == subtype || s == latest_alias(subtype)) => 3,
                    (k, "*") if k == kind => 2,
                    ("*", "*") => 1,
                    _ => return None,
                };
                Some((specificity, *q))
            })
            .max_by_key(|(specificity, _)| *specificity)
            .map_or(0.0, |(_, q)| q);
        if quality > best.1 {
            best = (format, quality);
        }
    }
    best.0
}

fn latest_alias(subtype: &str) -> String {
    subtype.replace(".v1+", ".latest+")
}

fn parse_range(range: &str) -> Option<(String, String, f32)> {
    let mut parts = range.split(';');
    let media = parts.next()?.trim().to_ascii_lowercase();
    let (kind, subtype) = media.split_once('/')?;
    let mut quality = 1.0;
    for param in parts {
        if let Some(("q", value)) = param
            .trim()
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
        {
            quality = value
                .parse()
                .ok()
                .filter(|q: &f32| (0.0..=1.0).contains(q))?;
        }
    }
    Some((kind.to_owned(), subtype.to_owned(), quality))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_warehouse() {
        let cases = [
            (None, Format::Html),
            (Some(""), Format::Html),
            (Some("*/*"), Format::Html),
            (Some("image/png"), Format::Html),
            // pip
            (
                Some(
                    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01",
                ),
                Format::V1Json,
            ),
            // uv
            (
                Some(
                    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01",
                ),
                Format::V1Json,
            ),
            // poetry
            (
                Some("application/vnd.pypi.simple.v1+json, */*;q=0.1"),
                Format::V1Json,
            ),
            (
                Some("application/vnd.pypi.simple.latest+json"),
                Format::V1Json,
            ),
            (Some("application/vnd.pypi.simple.v1+html"), Format::V1Html),
            (Some("application/*"), Format::V1Html),
            (
                Some("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.5"),
                Format::Html,
            ),
            (
                Some("application/vnd.pypi.simple.v1+json;q=0"),
                Format::Html,
            ),
        ];
        for (accept, expected) in cases {
            assert_eq!(negotiate(accept), expected, "{accept:?}");
        }
    }
}
