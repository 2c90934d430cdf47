//! Sdist filenames (packaging's parse_sdist_filename): normalised name, round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_packaging::filename::{self, PackageType};
use wharf_packaging::name;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let _ = filename::check_filename(raw, PackageType::Sdist);
    let Ok((project, version)) = filename::parse_sdist_filename(raw) else {
        return;
    };
    assert!(!project.is_empty());
    assert_eq!(name::normalize(&project), project, "{raw:?}");
    for ext in [".tar.gz", ".zip"] {
        let rebuilt = format!("{project}-{version}{ext}");
        let again = filename::parse_sdist_filename(&rebuilt)
            .unwrap_or_else(|e| panic!("{raw:?} -> {rebuilt:?}: {e}"));
        assert_eq!(
            again,
            (project.clone(), version.clone()),
            "{raw:?} -> {rebuilt:?}"
        );
    }
});
