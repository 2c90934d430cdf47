//! Zip inspection (wheels and zip sdists): never a panic, never more decompressed bytes than
//! the budget, and what is accepted reads the same, entry by entry, through the zip crate.
#![no_main]

use std::io::Read;
use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wharf_packaging::archive::{self, MAX_RATIO, MAX_UNCOMPRESSED};

static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    tempfile::Builder::new()
        .prefix("wharf-fuzz-zip")
        .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .expect("temp dir")
});

fn path() -> PathBuf {
    DIR.path().join("demo-1.0-py3-none-any.whl")
}

fn reads_back(data: &[u8]) {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(data)).expect("accepted, so readable");
    let budget = MAX_UNCOMPRESSED.max(data.len() as u64 * MAX_RATIO);
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).expect("entry");
        let declared = entry.size();
        let mut sink = Vec::new();
        let n = (&mut entry)
            .take(budget + 1)
            .read_to_end(&mut sink)
            .expect("entry reads to its end");
        assert_eq!(n as u64, declared, "{:?}", entry.name_raw());
        total += n as u64;
        assert!(total <= budget);
    }
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(&path, data).expect("write");
    let wheel = archive::inspect_wheel(&path, "demo-1.0-py3-none-any.whl", "demo", "1.0", &[]);
    if let Ok(contents) = &wheel {
        assert!(contents.metadata.len() <= 16 * 1024 * 1024);
        reads_back(data);
    }
    let licenses = ["LICENSE".to_owned()];
    if archive::inspect_sdist(&path, "demo-1.0.zip", &licenses).is_ok() {
        reads_back(data);
    }
});
