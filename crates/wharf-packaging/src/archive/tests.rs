use std::io::Write;

use super::*;

/// A zip at `dir/name`; a `.whl` gets the RECORD its members need (in the dist-info of its
/// WHEEL or METADATA), unless it lists a RECORD itself.
fn write_zip(dir: &tempfile::TempDir, name: &str, members: &[(&str, &[u8])]) -> std::path::PathBuf {
    let dist_info = members.iter().find_map(|(m, _)| {
        m.split_once(".dist-info/")
            .map(|(d, _)| format!("{d}.dist-info"))
    });
    let has_record = members.iter().any(|(m, _)| m.ends_with("/RECORD"));
    let record;
    let mut members = members.to_vec();
    if let (true, false, Some(dist_info)) = (name.ends_with(".whl"), has_record, dist_info) {
        let mut text = record_for(&members);
        text.extend_from_slice(format!("{dist_info}/RECORD,,\n").as_bytes());
        record = (format!("{dist_info}/RECORD"), text);
        members.push((record.0.as_str(), record.1.as_slice()));
    }
    write_raw_zip(dir, name, &members)
}

/// The RECORD lines of `members` (sha256, size).
fn record_for(members: &[(&str, &[u8])]) -> Vec<u8> {
    use base64::Engine;
    use sha2::Digest;
    let mut out = String::new();
    for (member, data) in members {
        let digest =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(data));
        out.push_str(&format!("{member},sha256={digest},{}\n", data.len()));
    }
    out.into_bytes()
}

fn write_raw_zip(
    dir: &tempfile::TempDir,
    name: &str,
    members: &[(&str, &[u8])],
) -> std::path::PathBuf {
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

/// One entry of a hand-built zip: what its local header and its central record say.
#[derive(Clone)]
struct Raw<'a> {
    name: &'a str,
    data: &'a [u8],
    central_name: Option<&'a str>,
    local_size: Option<u32>,
    local_method: Option<u16>,
    method: u16,
    flags: u16,
    unix_mode: u32,
}

fn raw<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        data,
        central_name: None,
        local_size: None,
        local_method: None,
        method: 0,
        flags: 0,
        unix_mode: 0o100644,
    }
}

/// Where a hand-built zip hides extra bytes.
#[derive(Default)]
struct Extra<'a> {
    before: &'a [u8],
    between: &'a [u8],
    before_central: &'a [u8],
    after: &'a [u8],
}

/// Writes stored entries byte by byte, so that each header can say what a test needs.
fn raw_zip(entries: &[Raw<'_>], extra: &Extra<'_>) -> Vec<u8> {
    let mut out = extra.before.to_vec();
    let mut central = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(extra.between);
        }
        let offset = out.len() as u32;
        let crc = crc32fast::hash(e.data);
        let size = e.data.len() as u32;
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&e.flags.to_le_bytes());
        out.extend_from_slice(&e.local_method.unwrap_or(e.method).to_le_bytes());
        out.extend_from_slice(&[0, 0, 0x21, 0]); // time, date (1980-01-01)
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&e.local_size.unwrap_or(size).to_le_bytes());
        out.extend_from_slice(&e.local_size.unwrap_or(size).to_le_bytes());
        out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(e.data);
        let name = e.central_name.unwrap_or(e.name);
        central.extend_from_slice(b"PK\x01\x02");
        out_u16s(&mut central, &[0x031e, 20, e.flags, e.method, 0, 0x21]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        out_u16s(&mut central, &[name.len() as u16, 0, 0, 0, 0]);
        central.extend_from_slice(&(e.unix_mode << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    out.extend_from_slice(extra.before_central);
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06");
    let count = entries.len() as u16;
    out_u16s(&mut out, &[0, 0, count, count]);
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(extra.after);
    out
}

fn out_u16s(out: &mut Vec<u8>, values: &[u16]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

const WHEEL: &[u8] = b"Wheel-Version: 1.0\nTag: py3-none-any\n";

/// The members of a valid wheel of demo 1.0 plus `extra`, with a RECORD listing them all.
fn wheel_members<'a>(extra: &[Raw<'a>], record: &'a mut Vec<u8>) -> Vec<Raw<'a>> {
    let mut entries = vec![
        raw("demo/__init__.py", b"x = 1\n"),
        raw("demo-1.0.dist-info/METADATA", METADATA),
        raw("demo-1.0.dist-info/WHEEL", WHEEL),
    ];
    entries.extend_from_slice(extra);
    let listed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|e| (e.central_name.unwrap_or(e.name), e.data))
        .collect();
    *record = record_for(&listed);
    record.extend_from_slice(b"demo-1.0.dist-info/RECORD,,\n");
    entries.push(raw("demo-1.0.dist-info/RECORD", record));
    entries
}

fn inspect_raw_wheel(bytes: &[u8]) -> Result<WheelContents, String> {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("demo-1.0-py3-none-any.whl");
    std::fs::write(&path, bytes).expect("write");
    inspect_wheel(&path, "demo-1.0-py3-none-any.whl", "demo", "1.0", &[])
}

#[track_caller]
fn assert_refused(bytes: &[u8], message: &str) {
    let err = inspect_raw_wheel(bytes).expect_err(message);
    assert!(err.contains(message), "expected {message:?} in {err:?}");
}

#[test]
fn the_hand_built_wheel_is_valid() {
    let mut record = Vec::new();
    let bytes = raw_zip(&wheel_members(&[], &mut record), &Extra::default());
    assert_eq!(inspect_raw_wheel(&bytes).expect("valid").metadata, METADATA);
}

#[test]
fn refuses_local_headers_that_disagree_with_the_central_directory() {
    for (entry, message) in [
        (
            Raw {
                central_name: Some("demo/good.py"),
                ..raw("demo/evil.py", b"print('hi')\n")
            },
            "local header of 'demo/good.py' disagrees with the central directory on the name",
        ),
        (
            Raw {
                local_size: Some(3),
                ..raw("demo/a.py", b"print('hi')\n")
            },
            "disagrees with the central directory on the sizes",
        ),
        (
            Raw {
                local_method: Some(8),
                ..raw("demo/a.py", b"print('hi')\n")
            },
            "disagrees with the central directory on the compression method",
        ),
    ] {
        let mut record = Vec::new();
        assert_refused(
            &raw_zip(&wheel_members(&[entry], &mut record), &Extra::default()),
            message,
        );
    }
}

#[test]
fn refuses_data_outside_the_entries() {
    let mut record = Vec::new();
    let entries = wheel_members(&[], &mut record);
    let hidden = b"PK\x03\x04 a hidden entry or another format's header";
    for (extra, message) in [
        (
            Extra {
                before: hidden,
                ..Extra::default()
            },
            "bytes of data before entry 'demo/__init__.py'",
        ),
        (
            Extra {
                between: hidden,
                ..Extra::default()
            },
            "bytes of data before entry 'demo-1.0.dist-info/METADATA'",
        ),
        (
            Extra {
                before_central: hidden,
                ..Extra::default()
            },
            "bytes of data between the last entry and the central directory",
        ),
        (
            Extra {
                after: hidden,
                ..Extra::default()
            },
            "archive has a comment or trailing data",
        ),
    ] {
        assert_refused(&raw_zip(&entries, &extra), message);
    }
}

#[test]
fn refuses_encrypted_and_unsupported_members() {
    for (entry, message) in [
        (
            Raw {
                flags: 1,
                ..raw("demo/a.py", b"x")
            },
            "encrypted members are not allowed",
        ),
        (
            Raw {
                method: 12,
                ..raw("demo/a.py", b"x")
            },
            "only STORED and DEFLATED compression is allowed",
        ),
    ] {
        let mut record = Vec::new();
        assert_refused(
            &raw_zip(&wheel_members(&[entry], &mut record), &Extra::default()),
            message,
        );
    }
}

#[test]
fn refuses_duplicate_names_also_after_folding_and_normalising() {
    for (a, b, message) in [
        ("demo/a.py", "demo/a.py", "duplicate filenames"),
        (
            "demo/a.py",
            "demo/A.py",
            "duplicate filenames after case folding and path normalisation: 'demo/a.py' and 'demo/A.py'",
        ),
        (
            "demo/a.py",
            "demo//a.py",
            "after case folding and path normalisation",
        ),
        (
            "demo/a.py",
            "./demo/a.py",
            "after case folding and path normalisation",
        ),
    ] {
        let mut record = Vec::new();
        let bytes = raw_zip(
            &wheel_members(&[raw(a, b"one\n"), raw(b, b"two\n")], &mut record),
            &Extra::default(),
        );
        assert_refused(&bytes, message);
    }
}

#[test]
fn refuses_entries_outside_the_root_and_links() {
    for (name, message) in [
        (
            "../evil.py",
            "entry '../evil.py' is outside the archive root",
        ),
        ("demo/../../evil.py", "is outside the archive root"),
        ("/etc/evil.py", "is outside the archive root"),
        ("C:/evil.py", "is outside the archive root"),
        ("demo\\evil.py", "uses '\\' as a path separator"),
    ] {
        let mut record = Vec::new();
        let bytes = raw_zip(
            &wheel_members(&[raw(name, b"x")], &mut record),
            &Extra::default(),
        );
        assert_refused(&bytes, message);
    }
    for (mode, kind) in [
        (0o120777, "symbolic link"),
        (0o020644, "device"),
        (0o010644, "FIFO"),
    ] {
        let mut record = Vec::new();
        let entry = Raw {
            unix_mode: mode,
            ..raw("demo/link", b"/etc/passwd")
        };
        let bytes = raw_zip(&wheel_members(&[entry], &mut record), &Extra::default());
        assert_refused(&bytes, &format!("entry 'demo/link' is a {kind}"));
    }
}

/// A wheel of the usual members and this RECORD.
fn wheel_with_record(record: &[u8], extra: &[Raw<'_>]) -> Vec<u8> {
    let mut entries = vec![
        raw("demo/__init__.py", b"x = 1\n"),
        raw("demo-1.0.dist-info/METADATA", METADATA),
        raw("demo-1.0.dist-info/WHEEL", WHEEL),
    ];
    entries.extend_from_slice(extra);
    entries.push(raw("demo-1.0.dist-info/RECORD", record));
    raw_zip(&entries, &Extra::default())
}

fn good_record_lines() -> String {
    String::from_utf8(record_for(&[
        ("demo/__init__.py", b"x = 1\n"),
        ("demo-1.0.dist-info/METADATA", METADATA),
        ("demo-1.0.dist-info/WHEEL", WHEEL),
    ]))
    .expect("utf-8")
}

#[test]
fn refuses_a_record_that_does_not_describe_the_wheel() {
    let good = good_record_lines();
    let own = "demo-1.0.dist-info/RECORD,,\n";
    // Quoted fields, CRLF line ends, blank lines and signature files are read as pip does.
    let quoted = format!(
        "{}\r\n\r\n\"demo-1.0.dist-info/RECORD\",\"\",\"\"\r\n",
        good.replace('\n', "\r\n")
    );
    assert!(inspect_raw_wheel(&wheel_with_record(quoted.as_bytes(), &[])).is_ok());
    let jws = format!("{good}{own}");
    assert!(
        inspect_raw_wheel(&wheel_with_record(
            jws.as_bytes(),
            &[raw("demo-1.0.dist-info/RECORD.jws", b"{}")]
        ))
        .is_ok()
    );

    let wrong_hash = good.replacen("sha256=", "sha256=AAAA", 1);
    let wrong_size = good.replacen(",6\n", ",7\n", 1);
    let md5 = good.replacen("sha256=", "md5=", 1);
    let no_hash = good.replacen("sha256=", "", 1);
    let absent =
        format!("{good}demo/gone.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n{own}");
    let duplicate = format!("{good}{good}{own}");
    let two_fields = format!("{good}demo/x.py,sha256=abc\n{own}");
    let hashed_record = format!("{good}demo-1.0.dist-info/RECORD,sha256=abc,10\n");
    let bad_csv = format!("{good}\"demo/x.py,sha256=abc,1\n");
    for (record, extra, message) in [
        (
            format!("{good}{own}"),
            vec![raw("demo/extra.py", b"hidden\n")],
            "RECORD does not list 'demo/extra.py'",
        ),
        (
            format!("{wrong_hash}{own}"),
            vec![],
            "RECORD has the wrong hash for 'demo/__init__.py'",
        ),
        (
            format!("{wrong_size}{own}"),
            vec![],
            "RECORD gives the size of 'demo/__init__.py' as '7', but it is 6 bytes",
        ),
        (format!("{md5}{own}"), vec![], "hash algorithm 'md5'"),
        (
            format!("{no_hash}{own}"),
            vec![],
            "RECORD has no hash for 'demo/__init__.py'",
        ),
        (
            absent,
            vec![],
            "RECORD lists 'demo/gone.py', which is not in the wheel",
        ),
        (duplicate, vec![], "more than once"),
        (two_fields, vec![], "has 2 fields, expected 3"),
        (
            hashed_record,
            vec![],
            "RECORD lists a hash for 'demo-1.0.dist-info/RECORD'",
        ),
        (bad_csv, vec![], "RECORD is not valid CSV"),
    ] {
        let err =
            inspect_raw_wheel(&wheel_with_record(record.as_bytes(), &extra)).expect_err(message);
        assert!(err.contains(message), "expected {message:?} in {err:?}");
    }
    let mut entries = vec![
        raw("demo-1.0.dist-info/METADATA", METADATA),
        raw("demo-1.0.dist-info/WHEEL", WHEEL),
    ];
    entries.truncate(2);
    assert_refused(
        &raw_zip(&entries, &Extra::default()),
        "does not contain the required RECORD file: demo-1.0.dist-info/RECORD",
    );
}

/// An sdist holding PKG-INFO and one member of `kind` named `name`.
fn sdist_with(
    name: &str,
    kind: tar::EntryType,
    link: Option<&str>,
) -> Result<SdistContents, String> {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("demo-1.0.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        File::create(&path).expect("create"),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    let mut add = |name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        // Written raw: the tar crate's own setters refuse the names under test.
        let bytes = name.as_bytes();
        header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        if let Some(link) = link {
            header.set_link_name(link).expect("link");
        }
        header.set_cksum();
        tar.append(&header, data).expect("append");
    };
    add("demo-1.0/PKG-INFO", tar::EntryType::Regular, None, METADATA);
    add(name, kind, link, b"");
    tar.into_inner().expect("tar").finish().expect("gz");
    inspect_sdist(&path, "demo-1.0.tar.gz", &[])
}

#[test]
fn refuses_sdists_with_links_devices_and_absolute_paths() {
    use tar::EntryType;
    assert!(sdist_with("demo-1.0/setup.py", EntryType::Regular, None).is_ok());
    assert!(sdist_with("demo-1.0/src/", EntryType::Directory, None).is_ok());
    for (name, kind, link, message) in [
        (
            "demo-1.0/passwd",
            EntryType::Symlink,
            Some("/etc/passwd"),
            "member 'demo-1.0/passwd' is a symbolic link",
        ),
        (
            "demo-1.0/hard",
            EntryType::Link,
            Some("demo-1.0/PKG-INFO"),
            "is a hard link",
        ),
        ("demo-1.0/tty", EntryType::Char, None, "is a device"),
        ("demo-1.0/disk", EntryType::Block, None, "is a device"),
        ("demo-1.0/pipe", EntryType::Fifo, None, "is a FIFO"),
        (
            "/demo-1.0/setup.py",
            EntryType::Regular,
            None,
            "entry '/demo-1.0/setup.py' is outside the archive root",
        ),
        (
            "demo-1.0/../../x",
            EntryType::Regular,
            None,
            "is outside the archive root",
        ),
        (
            "demo-1.0/pkg-info",
            EntryType::Regular,
            None,
            "duplicate filenames after case folding",
        ),
        (
            "demo-1.0//PKG-INFO",
            EntryType::Regular,
            None,
            "duplicate filenames after case folding",
        ),
    ] {
        let err = sdist_with(name, kind, link).expect_err(message);
        assert!(err.contains(message), "expected {message:?} in {err:?}");
    }
}
