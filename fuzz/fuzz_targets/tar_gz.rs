//! .tar.gz sdist inspection: never a panic, never past the budget, and what is accepted the
//! tar crate's own reader (which applies PAX and GNU headers itself) sees as plain files and
//! directories inside one root. Input: a tar (gzipped here) or, with gzip's magic, a .tar.gz.
#![no_main]

use std::io::{Read, Write};
use std::path::{Component, PathBuf};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wharf_packaging::archive;

static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    tempfile::Builder::new()
        .prefix("wharf-fuzz-tar")
        .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .expect("temp dir")
});

fn path() -> PathBuf {
    DIR.path().join("demo-1.0.tar.gz")
}

fuzz_target!(|data: &[u8]| {
    let gz = if data.starts_with(&[0x1f, 0x8b]) {
        data.to_vec()
    } else {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("gzip");
        encoder.finish().expect("gzip")
    };
    let path = path();
    std::fs::write(&path, &gz).expect("write");
    let Ok(contents) = archive::inspect_sdist(&path, "demo-1.0.tar.gz", &[]) else {
        return;
    };
    assert!(
        contents
            .pkg_info
            .is_some_and(|p| p.len() <= 16 * 1024 * 1024)
    );
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
    let mut roots = std::collections::HashSet::new();
    for entry in tar.entries().expect("accepted, so readable") {
        let Ok(mut entry) = entry else {
            // The tar crate may stop at damage past the end the inspection read to.
            break;
        };
        let kind = entry.header().entry_type();
        assert!(kind.is_file() || kind.is_dir(), "{kind:?}");
        let path = entry.path().expect("path").into_owned();
        assert!(
            path.components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir)),
            "{path:?}"
        );
        if let Some(Component::Normal(root)) = path
            .components()
            .find(|c| matches!(c, Component::Normal(_)))
        {
            roots.insert(root.to_owned());
        }
        let mut sink = Vec::new();
        let _ = (&mut entry).take(64 * 1024 * 1024).read_to_end(&mut sink);
    }
    assert!(roots.len() <= 1, "{roots:?}");
});
