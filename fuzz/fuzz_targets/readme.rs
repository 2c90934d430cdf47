//! The README renderer: whatever the description (Markdown, reStructuredText, plain text),
//! the HTML it gives holds no script, style, frame, form or embedded object, no event handler
//! attribute, and no `javascript:`, `vbscript:` or `data:` URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_packaging::readme;

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("text/markdown"),
    Some("text/x-rst"),
    Some("text/plain"),
    None,
];

const FORBIDDEN_TAGS: [&str; 12] = [
    "script", "style", "iframe", "frame", "object", "embed", "form", "input", "base", "meta",
    "link", "svg",
];

/// Every tag of `html` as (name, attributes); quotes are honoured, since a serialised attribute
/// value may hold `>`.
fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let bytes = html.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = html[at..].find('<') {
        let mut i = at + offset + 1;
        let name_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
            i += 1;
        }
        let name = html[name_start..i].trim_start_matches('/').to_ascii_lowercase();
        let mut attributes = Vec::new();
        loop {
            while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
                i += 1;
            }
            if i >= bytes.len() || bytes[i] == b'>' {
                break;
            }
            let key_start = i;
            while i < bytes.len() && !b"= \t\n>".contains(&bytes[i]) {
                i += 1;
            }
            let key = html[key_start..i].to_ascii_lowercase();
            let mut value = String::new();
            if i < bytes.len() && bytes[i] == b'=' {
                i += 1;
                let quote = bytes.get(i).copied().filter(|q| *q == b'"' || *q == b'\'');
                let value_start = if quote.is_some() { i + 1 } else { i };
                i = value_start;
                while i < bytes.len()
                    && match quote {
                        Some(q) => bytes[i] != q,
                        None => !bytes[i].is_ascii_whitespace() && bytes[i] != b'>',
                    }
                {
                    i += 1;
                }
                value = html[value_start..i.min(bytes.len())].to_owned();
                if quote.is_some() {
                    i += 1;
                }
            }
            attributes.push((key, value));
        }
        found.push((name, attributes));
        at = (i + 1).min(html.len());
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let Ok(description) = std::str::from_utf8(rest) else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(choice) % CONTENT_TYPES.len()];
    let html = readme::render(description, content_type, "https://index.example.org/");
    for (name, attributes) in tags(&html) {
        assert!(!FORBIDDEN_TAGS.contains(&name.as_str()), "<{name}> in {html:?}");
        for (key, value) in attributes {
            assert!(!key.starts_with("on"), "{key}= on <{name}> in {html:?}");
            assert!(key != "style", "style= on <{name}> in {html:?}");
            // As a browser reads a URL (WHATWG): leading and trailing C0 controls and spaces
            // stripped, tabs and newlines removed wherever they are.
            let decoded: String = value
                .replace("&amp;", "&")
                .trim_matches(|c: char| c <= ' ')
                .chars()
                .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
                .collect::<String>()
                .to_ascii_lowercase();
            for scheme in ["javascript:", "vbscript:", "data:"] {
                assert!(!decoded.starts_with(scheme), "{key}={value:?} in {html:?}");
            }
        }
    }
});
