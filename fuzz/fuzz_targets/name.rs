//! PEP 503 names: normalisation is idempotent and yields what packaging's would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_packaging::name;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let normal = name::normalize(raw);
    assert_eq!(name::normalize(&normal), normal, "idempotent: {raw:?}");
    assert!(name::is_normalized(&normal));
    assert!(
        !normal.contains("--") && !normal.contains(['_', '.']),
        "{raw:?} -> {normal:?}"
    );
    if name::is_valid(raw) {
        assert!(name::is_valid(&normal), "{raw:?} -> {normal:?}");
        assert!(normal.bytes().all(|b| !b.is_ascii_uppercase()));
    }
    let ultra = name::ultranormalize(raw);
    assert_eq!(name::ultranormalize(&ultra), ultra, "{raw:?}");
    // Names equal after normalisation are confusable with each other (ASCII: the confusable
    // check lower-cases ASCII only, where normalisation lower-cases all of Unicode).
    if raw.is_ascii() {
        assert_eq!(name::ultranormalize(&normal), ultra, "{raw:?}");
    }
    let _ = name::is_stdlib_module(raw);
});
