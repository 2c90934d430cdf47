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
