//! PEP 691 content negotiation over any Accept header: never a panic, a format only when the
//! header names it (or a wildcard), and refusing the JSON format with `q=0` never changes a
//! choice that was not JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_packaging::negotiate::{Format, negotiate};

fuzz_target!(|data: &[u8]| {
    let Ok(accept) = std::str::from_utf8(data) else {
        return;
    };
    let format = negotiate(Some(accept));
    assert_eq!(format, negotiate(Some(accept)), "deterministic");
    let lower = accept.to_ascii_lowercase();
    if format == Format::V1Json {
        assert!(lower.contains("json") || lower.contains('*'), "{accept:?}");
    }
    if format == Format::V1Html {
        assert!(lower.contains("+html") || lower.contains('*'), "{accept:?}");
    }
    if format != Format::V1Json {
        let refused = format!("{accept},application/vnd.pypi.simple.v1+json;q=0");
        assert_eq!(negotiate(Some(&refused)), format, "{accept:?}");
    }
});
