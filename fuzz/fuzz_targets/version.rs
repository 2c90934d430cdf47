//! PEP 440: parsing, the normal form, and ordering as a total order. Input: up to three
//! versions, one a line (a fourth line is read as a specifier set).
#![no_main]

use std::cmp::Ordering;
use std::hash::{BuildHasher, RandomState};

use libfuzzer_sys::fuzz_target;
use wharf_packaging::version::{self, Version};

fn check_one(raw: &str, v: &Version) {
    // The normal form is a fixed point and names the same version.
    let shown = v.to_string();
    let again = version::parse(&shown).unwrap_or_else(|e| panic!("{raw:?} -> {shown:?}: {e}"));
    assert_eq!(&again, v, "{raw:?} -> {shown:?}");
    assert_eq!(again.to_string(), shown, "{raw:?}");
    // Dropping trailing zeros of the release names the same version.
    let canonical = version::canonicalize(v);
    let parsed = version::parse(&canonical).unwrap_or_else(|e| panic!("{canonical:?}: {e}"));
    assert_eq!(parsed.cmp(v), Ordering::Equal, "{raw:?} -> {canonical:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let raws: Vec<&str> = lines.by_ref().take(3).collect();
    let versions: Vec<Version> = raws
        .iter()
        .filter_map(|raw| {
            let v = version::parse(raw).ok()?;
            check_one(raw, &v);
            Some(v)
        })
        .collect();
    let hasher = RandomState::new();
    for a in &versions {
        assert_eq!(a.cmp(a), Ordering::Equal);
        for b in &versions {
            let ab = a.cmp(b);
            assert_eq!(ab, b.cmp(a).reverse(), "antisymmetry: {a} {b}");
            assert_eq!(ab == Ordering::Equal, a == b, "eq agrees with cmp: {a} {b}");
            if a == b {
                assert_eq!(hasher.hash_one(a), hasher.hash_one(b), "hash: {a} {b}");
            }
            for c in &versions {
                if a <= b && b <= c {
                    assert!(a <= c, "transitivity: {a} <= {b} <= {c}");
                }
            }
        }
    }
    if let Some(spec) = lines.next()
        && let Ok(specifiers) = version::parse_specifiers(spec)
    {
        let shown = specifiers.to_string();
        let again = version::parse_specifiers(&shown)
            .unwrap_or_else(|e| panic!("{spec:?} -> {shown:?}: {e}"));
        for v in &versions {
            assert_eq!(specifiers.contains(v), again.contains(v), "{spec:?} {v}");
        }
    }
});
