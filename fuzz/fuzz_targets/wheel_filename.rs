//! Wheel filenames: what parses can be written back and parses to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_packaging::filename::{self, PackageType, WheelFilename};
use wharf_packaging::name;

fn ok_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let _ = filename::check_filename(raw, PackageType::BdistWheel);
    let Ok(wheel) = WheelFilename::parse(raw) else {
        return;
    };
    assert!(!wheel.name.is_empty() && !wheel.name.contains(['-']) && !wheel.name.contains("__"));
    for tags in [&wheel.python_tags, &wheel.abi_tags, &wheel.platform_tags] {
        assert!(
            !tags.is_empty() && tags.iter().all(|t| ok_tag(t)),
            "{raw:?}"
        );
    }
    for tag in &wheel.platform_tags {
        let _ = filename::is_allowed_platform_tag(tag);
    }
    if let Some(build) = &wheel.build {
        assert!(build.starts_with(|c: char| c.is_ascii_digit()));
    }
    let rebuilt = format!(
        "{}-{}{}-{}-{}-{}.whl",
        wheel.name,
        wheel.version,
        wheel
            .build
            .as_ref()
            .map(|b| format!("-{b}"))
            .unwrap_or_default(),
        wheel.python_tags.join("."),
        wheel.abi_tags.join("."),
        wheel.platform_tags.join(".")
    );
    let again =
        WheelFilename::parse(&rebuilt).unwrap_or_else(|e| panic!("{raw:?} -> {rebuilt:?}: {e}"));
    assert_eq!(again, wheel, "{raw:?} -> {rebuilt:?}");
    let _ = filename::expected_sdist_filename(&name::normalize(&wheel.name), &wheel.version);
});
