use std::io::Write;

use super::*;

fn write_zip(dir: &tempfile::TempDir, name: &str, members: &[(&str, &[u8])]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let mut zip = zip::ZipWriter::new(File::create(&path).expect("create"));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (member, data) in members {
        zip.start_file(*member, options).expect("start");
        zip.write_all(data).expect("write");
    }
    zip.finish().expect("finish");
    path
}

fn write_tar_gz(
    dir: &tempfile::TempDir,
    name: &str,
    members: &[(&str, &[u8])],
) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let gz = flate2::write::GzEncoder::new(
        File::create(&path).expect("create"),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    for (member, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, member, *data).expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gz");
    path
}

fn name_of(path: &std::path::Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned()
}

const METADATA: &[u8] = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n";

#[test]
fn accepts_a_wheel_and_returns_its_metadata() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = write_zip(
        &dir,
        "demo-1.0-py3-none-any.whl",
        &[
            ("demo/__init__.py", b""),
            ("demo-1.0.dist-info/METADATA", METADATA),
            ("demo-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n"),
            (
                "demo-1.0.dist-info/entry_points.txt",
                b"[console_scripts]\ndemo-cli = demo:main\n",
            ),
            ("demo-1.0.dist-info/RECORD", b""),
        ],
    );
    let contents = inspect_wheel(&path, &name_of(&path), "demo", "1.0", &[]).expect("valid wheel");
    assert_eq!(contents.metadata, METADATA);
}

#[test]
fn refuses_broken_wheels() {
    let dir = tempfile::tempdir().expect("tmp");
    let no_metadata = write_zip(&dir, "a.whl", &[("demo-1.0.dist-info/WHEEL", b"")]);
    assert!(
        inspect_wheel(&no_metadata, &name_of(&no_metadata), "demo", "1.0", &[])
            .unwrap_err()
            .contains("METADATA")
    );
    let no_wheel = write_zip(&dir, "b.whl", &[("demo-1.0.dist-info/METADATA", METADATA)]);
    assert!(
        inspect_wheel(&no_wheel, &name_of(&no_wheel), "demo", "1.0", &[])
            .unwrap_err()
            .contains("WHEEL")
    );
    let bad_entry_point = write_zip(
        &dir,
        "c.whl",
        &[
            ("demo-1.0.dist-info/METADATA", METADATA),
            ("demo-1.0.dist-info/WHEEL", b""),
            (
                "demo-1.0.dist-info/entry_points.txt",
                b"[console_scripts]\nbad name! = demo:main\n",
            ),
        ],
    );
    assert!(
        inspect_wheel(
            &bad_entry_point,
            &name_of(&bad_entry_point),
            "demo",
            "1.0",
            &[]
        )
        .unwrap_err()
        .contains("entry point")
    );
    let no_license = write_zip(
        &dir,
        "d.whl",
        &[
            ("demo-1.0.dist-info/METADATA", METADATA),
            ("demo-1.0.dist-info/WHEEL", b""),
        ],
    );
    let err = inspect_wheel(
        &no_license,
        &name_of(&no_license),
        "demo",
        "1.0",
        &["LICENSE".into()],
    )
    .unwrap_err();
    assert!(err.contains("License-File LICENSE does not exist"), "{err}");
    let not_zip = dir.path().join("e.whl");
    std::fs::write(
        &not_zip,
        b"this is not a zip file at all, just some text to be long enough",
    )
    .expect("write");
    assert_eq!(
        inspect_wheel(&not_zip, &name_of(&not_zip), "demo", "1.0", &[]).unwrap_err(),
        "File is not a zipfile"
    );
}

#[test]
fn refuses_zip_tricks() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = write_zip(
        &dir,
        "g.whl",
        &[
            ("demo-1.0.dist-info/METADATA", METADATA),
            ("demo-1.0.dist-info/WHEEL", b""),
        ],
    );
    let bytes = std::fs::read(&good).expect("read");
    let trailing = dir.path().join("t.whl");
    std::fs::write(&trailing, [bytes.as_slice(), b"trailing garbage"].concat()).expect("write");
    assert!(
        inspect_wheel(&trailing, &name_of(&trailing), "demo", "1.0", &[])
            .unwrap_err()
            .contains("ZIP archive not accepted")
    );
    let prepended = dir.path().join("p.whl");
    std::fs::write(&prepended, [b"MZ prefix data".as_slice(), &bytes].concat()).expect("write");
    assert!(inspect_wheel(&prepended, &name_of(&prepended), "demo", "1.0", &[]).is_err());
}

#[test]
fn refuses_a_zip_bomb() {
    let dir = tempfile::tempdir().expect("tmp");
    let zeros = vec![0u8; (MAX_UNCOMPRESSED + 1024) as usize];
    let bomb = write_zip(
        &dir,
        "bomb.whl",
        &[
            ("demo-1.0.dist-info/METADATA", METADATA),
            ("demo-1.0.dist-info/WHEEL", b""),
            ("demo/zeros.bin", &zeros),
        ],
    );
    assert_eq!(
        inspect_wheel(&bomb, &name_of(&bomb), "demo", "1.0", &[]).unwrap_err(),
        "File exceeds compression ratio of 50"
    );
    let tar_bomb = write_tar_gz(
        &dir,
        "bomb-1.0.tar.gz",
        &[("bomb-1.0/PKG-INFO", METADATA), ("bomb-1.0/zeros", &zeros)],
    );
    assert_eq!(
        inspect_sdist(&tar_bomb, &name_of(&tar_bomb), &[]).unwrap_err(),
        "File exceeds compression ratio of 50"
    );
}

#[test]
fn checks_sdist_layout() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = write_tar_gz(
        &dir,
        "demo-1.0.tar.gz",
        &[
            ("demo-1.0/PKG-INFO", METADATA),
            ("demo-1.0/LICENSE", b"MIT"),
        ],
    );
    inspect_sdist(&good, &name_of(&good), &["LICENSE".into()]).expect("valid sdist");
    assert!(
        inspect_sdist(&good, &name_of(&good), &["COPYING".into()])
            .unwrap_err()
            .contains("License-File COPYING")
    );
    let two_tops = write_tar_gz(
        &dir,
        "x.tar.gz",
        &[("a/PKG-INFO", METADATA), ("b/setup.py", b"")],
    );
    assert!(
        inspect_sdist(&two_tops, &name_of(&two_tops), &[])
            .unwrap_err()
            .contains("top-level")
    );
    let no_pkg_info = write_tar_gz(&dir, "y.tar.gz", &[("demo-1.0/setup.py", b"")]);
    assert!(
        inspect_sdist(&no_pkg_info, &name_of(&no_pkg_info), &[])
            .unwrap_err()
            .contains("PKG-INFO")
    );
    let not_tar = dir.path().join("z.tar.gz");
    std::fs::write(&not_tar, b"plain text").expect("write");
    assert!(
        inspect_sdist(&not_tar, &name_of(&not_tar), &[])
            .unwrap_err()
            .contains("not a valid .tar.gz")
    );
    let zip_sdist = write_zip(&dir, "demo-1.0.zip", &[("demo-1.0/PKG-INFO", METADATA)]);
    inspect_sdist(&zip_sdist, &name_of(&zip_sdist), &[]).expect("zip sdists are structurally fine");
}

/// A .tar.gz of one GNU long-name (`L`) member of `size` zero bytes, then a `PKG-INFO`: about
/// 1 MiB on disk for 1 GiB, which readers that buffer long names take whole into memory.
fn write_long_name_bomb(dir: &tempfile::TempDir, name: &str, size: u64) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let mut gz = flate2::write::GzEncoder::new(
        File::create(&path).expect("create"),
        flate2::Compression::best(),
    );
    let mut header = tar::Header::new_gnu();
    header.set_path("././@LongLink").expect("path");
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    gz.write_all(header.as_bytes()).expect("header");
    let chunk = vec![0u8; 1024 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64);
        gz.write_all(&chunk[..n as usize]).expect("data");
        left -= n;
    }
    let padding = (512 - size % 512) % 512;
    gz.write_all(&vec![0u8; padding as usize]).expect("padding");
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(METADATA.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "bomb-1.0/PKG-INFO", METADATA)
        .expect("append");
    tar.into_inner().expect("tar").finish().expect("gz");
    path
}

#[test]
fn refuses_a_gigabyte_long_name_before_reading_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let bomb = write_long_name_bomb(&dir, "bomb-1.0.tar.gz", 1 << 30);
    let on_disk = std::fs::metadata(&bomb).expect("stat").len();
    assert!(on_disk < 2 * 1024 * 1024, "{on_disk} bytes on disk");
    let err = inspect_sdist(&bomb, &name_of(&bomb), &[]).unwrap_err();
    assert!(err.contains("long name, long link or PAX header"), "{err}");
    assert!(err.contains("1073741824 bytes"), "{err}");
    // Just over the limit is refused too.
    let over = write_long_name_bomb(&dir, "over-1.0.tar.gz", MAX_HEADER_MEMBER + 1);
    assert!(
        inspect_sdist(&over, &name_of(&over), &[])
            .unwrap_err()
            .contains("at most 64 KiB")
    );
}

#[test]
fn applies_long_names_and_pax_paths_and_returns_pkg_info() {
    let dir = tempfile::tempdir().expect("tmp");
    let top = format!("demo-1.0-{}", "x".repeat(150));
    let path = dir.path().join("demo-1.0.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        File::create(&path).expect("create"),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    let append = |tar: &mut tar::Builder<_>, name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        // Names over 100 bytes are written as GNU long-name members by the builder.
        tar.append_data(&mut header, name, data).expect("append");
    };
    append(&mut tar, &format!("{top}/PKG-INFO"), METADATA);
    tar.append_pax_extensions([("path", format!("{top}/LICENSE").as_bytes())])
        .expect("pax");
    append(&mut tar, "ignored-name", b"MIT");
    tar.into_inner().expect("tar").finish().expect("gz");
    let contents = inspect_sdist(&path, &name_of(&path), &["LICENSE".into()]).expect("valid sdist");
    assert_eq!(contents.pkg_info.as_deref(), Some(METADATA));
}

#[test]
fn refuses_pax_headers_that_readers_could_disagree_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let write = |name: &str, records: &[(&str, &[u8])], global: bool| {
        let path = dir.path().join(name);
        let gz = flate2::write::GzEncoder::new(
            File::create(&path).expect("create"),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        let mut data = Vec::new();
        for (key, value) in records {
            let line_len = key.len() + value.len() + 3;
            let len = line_len + (line_len + 2).to_string().len();
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_entry_type(if global {
            tar::EntryType::XGlobalHeader
        } else {
            tar::EntryType::XHeader
        });
        header.set_cksum();
        tar.append(&header, data.as_slice()).expect("pax");
        let mut header = tar::Header::new_gnu();
        header.set_size(METADATA.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "demo-1.0/PKG-INFO", METADATA)
            .expect("append");
        tar.into_inner().expect("tar").finish().expect("gz");
        path
    };
    let size = write("a.tar.gz", &[("size", b"0")], false);
    assert!(
        inspect_sdist(&size, &name_of(&size), &[])
            .unwrap_err()
            .contains("PAX size records are not allowed")
    );
    let global = write("b.tar.gz", &[("path", b"other/PKG-INFO")], true);
    assert!(
        inspect_sdist(&global, &name_of(&global), &[])
            .unwrap_err()
            .contains("in global headers")
    );
    let big = "x".repeat((MAX_HEADER_MEMBER + 1) as usize);
    let huge = write("c.tar.gz", &[("comment", big.as_bytes())], false);
    assert!(
        inspect_sdist(&huge, &name_of(&huge), &[])
            .unwrap_err()
            .contains("at most 64 KiB")
    );
    // A harmless global header (git archive writes one) is not a member.
    let harmless = write("d.tar.gz", &[("comment", b"abc")], true);
    inspect_sdist(&harmless, &name_of(&harmless), &[]).expect("valid sdist");
}

#[test]
fn caps_the_member_count() {
    let dir = tempfile::tempdir().expect("tmp");
    let names: Vec<String> = (0..=MAX_MEMBERS).map(|i| format!("demo-1.0/{i}")).collect();
    let mut members: Vec<(&str, &[u8])> = vec![("demo-1.0/PKG-INFO", METADATA)];
    members.extend(names.iter().map(|n| (n.as_str(), b"".as_slice())));
    let tar = write_tar_gz(&dir, "demo-1.0.tar.gz", &members);
    assert!(
        inspect_sdist(&tar, &name_of(&tar), &[])
            .unwrap_err()
            .contains("more than 100000 members")
    );
    let zip = write_zip(&dir, "demo-1.0.zip", &members);
    let err = inspect_sdist(&zip, &name_of(&zip), &[]).unwrap_err();
    assert!(err.contains("more than 100000 members"), "{err}");
}

#[test]
fn the_budget_counts_bytes_actually_decompressed() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let chunk = vec![0u8; 1024 * 1024];
    for _ in 0..=(MAX_UNCOMPRESSED / chunk.len() as u64) {
        gz.write_all(&chunk).expect("write");
    }
    let compressed = gz.finish().expect("gz");
    let budget = Budget::for_compressed(compressed.len() as u64);
    let mut reader = budget.reader(flate2::read::GzDecoder::new(compressed.as_slice()));
    let read = std::io::copy(&mut reader, &mut std::io::sink());
    assert!(read.is_err() && budget.exceeded.get());
    // Within the budget, everything is read.
    let small = Budget::for_compressed(compressed.len() as u64 * 1000);
    let mut reader = small.reader(flate2::read::GzDecoder::new(compressed.as_slice()));
    assert!(std::io::copy(&mut reader, &mut std::io::sink()).is_ok());
}
