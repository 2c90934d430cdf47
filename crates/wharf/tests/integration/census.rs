//! Every event tag must be produced by some test (run after the suite, see `scripts/test`).

use std::collections::BTreeSet;

use wharf::events::EventTag;

#[test]
#[ignore = "run by scripts/test after the suite, with WHARF_EVENT_CENSUS set"]
fn every_event_tag_is_produced_by_some_test() {
    let dir = std::env::var("WHARF_EVENT_CENSUS").expect("WHARF_EVENT_CENSUS");
    let mut produced = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("census directory") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("census file");
        produced.extend(text.lines().map(str::to_owned));
    }
    let missing: Vec<&str> = EventTag::ALL
        .iter()
        .map(|t| t.as_str())
        .filter(|t| !produced.contains(*t))
        .collect();
    assert!(
        missing.is_empty(),
        "no test produces these event tags: {missing:?}"
    );
}
