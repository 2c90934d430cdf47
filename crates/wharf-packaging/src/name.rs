//! Project names (PEP 503 / PEP 508).

/// PEP 503 normalisation exactly as `packaging.utils.canonicalize_name` does it:
/// `re.sub(r"[-_.]+", "-", name).lower()`. A leading or trailing separator is kept (as one
/// `-`), so an invalid name never normalises to a valid one it is not.
pub fn normalize(name: &str) -> String {
    // Lower-cased first, as packaging does: Unicode's final-sigma rule looks at the
    // neighbouring characters, and `.` is transparent to it where `-` is not.
    let lower = if name.is_ascii() {
        name.to_ascii_lowercase()
    } else {
        name.to_lowercase()
    };
    let mut out = String::with_capacity(lower.len());
    let mut in_separator = false;
    for ch in lower.chars() {
        if matches!(ch, '-' | '_' | '.') {
            if !in_separator {
                out.push('-');
            }
            in_separator = true;
        } else {
            in_separator = false;
            out.push(ch);
        }
    }
    out
}

/// True when `name` is already in PEP 503 normal form.
pub fn is_normalized(name: &str) -> bool {
    // ASCII is unchanged by lower-casing without capitals, and by the separator rule when
    // its only separator is `-`, never twice in a row. Anything else is normalised to see.
    let mut previous = 0u8;
    for &b in name.as_bytes() {
        if !b.is_ascii() {
            return normalize(name) == name;
        }
        if b.is_ascii_uppercase() || b == b'_' || b == b'.' || (b == b'-' && previous == b'-') {
            return false;
        }
        previous = b;
    }
    true
}

/// A valid project name: ASCII letters and digits, with `.`, `_`, `-` inside
/// (`^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$`, case-insensitive).
pub fn is_valid(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Warehouse's "ultranormalised" form, used to refuse confusable names: separators dropped,
/// `l`/`i` read as `1` and `o` as `0`, lower case.
pub fn ultranormalize(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '.' | '_' | '-'))
        .map(|c| match c.to_ascii_lowercase() {
            'l' | 'i' => '1',
            'o' => '0',
            other => other,
        })
        .collect()
}

/// Whether `name` is a module of Python's standard library (`sys.stdlib_module_names` of
/// CPython 3.11): such names are refused for new projects.
pub fn is_stdlib_module(name: &str) -> bool {
    let normalized = normalize(name);
    include_str!("stdlib_modules.txt")
        .lines()
        .any(|module| normalize(module) == normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_pep_503() {
        for (raw, expected) in [
            ("Django", "django"),
            ("zope.interface", "zope-interface"),
            ("Foo__Bar-.baz", "foo-bar-baz"),
            ("a", "a"),
            // As packaging: separators at the ends are kept, non-ASCII is lower-cased.
            ("-a_", "-a-"),
            ("._A", "-a"),
            ("\u{c9}T\u{c9}", "\u{e9}t\u{e9}"),
        ] {
            assert_eq!(normalize(raw), expected);
        }
        assert!(is_normalized("foo-bar"));
        assert!(!is_normalized("Foo_bar"));
        // The quick ASCII check agrees with normalising and comparing.
        for name in [
            "",
            "a",
            "A",
            "foo-bar",
            "foo--bar",
            "-a-",
            "--",
            "-",
            "a.b",
            "a_b",
            "a b",
            "a/b",
            "9z",
            "zZ",
            "x-y-z",
            "x-_y",
            "\u{e9}t\u{e9}",
            "\u{c9}",
            "a\u{e9}-b",
            "a%20b",
        ] {
            assert_eq!(is_normalized(name), normalize(name) == name, "{name:?}");
        }
    }

    #[test]
    fn validates_names() {
        for ok in ["a", "A1", "foo.bar_baz-2", "9"] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "ü", "a/b", ".a", "a_"] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn knows_the_standard_library() {
        assert!(is_stdlib_module("asyncio"));
        assert!(is_stdlib_module("Email"));
        assert!(!is_stdlib_module("requests"));
    }

    #[test]
    fn ultranormalizes_confusables() {
        assert_eq!(ultranormalize("Foo-L.i"), ultranormalize("f0011"));
        assert_ne!(ultranormalize("abc"), ultranormalize("abd"));
    }
}
