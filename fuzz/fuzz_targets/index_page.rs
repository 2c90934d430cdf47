//! Simple API pages (PEP 691 JSON, PEP 503 HTML) as a hostile upstream may send them: the
//! input is read as both formats, project page and root page, without panicking; every hash
//! accepted is 64 lowercase hex digits; a JSON page written back as PEP 691 JSON reads back as
//! the same page.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_packaging::index_page::{self, PageFormat, ProjectPage};

fn check_hashes(page: &ProjectPage, data: &[u8]) {
    for file in &page.files {
        for hex in [&file.sha256, &file.metadata_sha256].into_iter().flatten() {
            assert!(
                hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{hex:?} of {:?} from {:?}",
                file.filename,
                String::from_utf8_lossy(data)
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for format in [PageFormat::Json, PageFormat::Html] {
        let _ = index_page::parse_root(format, data);
        if let Ok(page) = index_page::parse_project(format, data) {
            check_hashes(&page, data);
            // HTML pages carry less than JSON ones: either way, written as JSON, they read
            // back as they were.
            let written = index_page::to_json(&page);
            let again = index_page::parse_project(PageFormat::Json, &written)
                .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&written)));
            assert_eq!(again, page, "{:?}", String::from_utf8_lossy(&written));
        }
    }
});
