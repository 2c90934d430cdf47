//! The user-agent reader of the audit log: never a panic, always an object naming an
//! installer, and what it reports is taken from the string (no invented version).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_packaging::user_agent;

fuzz_target!(|data: &[u8]| {
    let Ok(agent) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = user_agent::parse(agent);
    let installer = parsed["installer"].as_str().expect("an installer, always");
    assert!(!installer.is_empty());
    if let Some(version) = parsed.get("version").and_then(|v| v.as_str()) {
        assert!(agent.contains(version), "{agent:?} -> {parsed}");
    }
    if installer != "Browser" && installer != "other" {
        assert!(
            agent.trim_start().to_ascii_lowercase().starts_with(installer),
            "{agent:?} -> {parsed}"
        );
    }
});
