//! Inspection of uploaded archives (`warehouse/forklift/legacy.py`, `utils/zipfiles.py`):
//! structural checks, bomb limits, required members, and the wheel's `METADATA` for PEP 658.
//! Every error is the message to show after "Invalid distribution file. ".

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use zip::{CompressionMethod, ZipArchive};

/// Archives that expand past this size must not also compress better than [`MAX_RATIO`].
pub const MAX_UNCOMPRESSED: u64 = 64 * 1024 * 1024;
pub const MAX_RATIO: u64 = 50;
/// No single metadata file we read may be larger than this.
const MAX_METADATA: u64 = 16 * 1024 * 1024;
const ZIP_DOCS: &str = "See https://docs.pypi.org/archives for more information.";

fn zip_refused(reason: &str) -> String {
    format!("ZIP archive not accepted: {reason}. {ZIP_DOCS}")
}

fn is_bomb(uncompressed: u64, compressed: u64) -> bool {
    uncompressed > MAX_UNCOMPRESSED && uncompressed > compressed.saturating_mul(MAX_RATIO)
}

/// What the index needs from a wheel: the exact bytes of its `METADATA`.
#[derive(Debug)]
pub struct WheelContents {
    pub metadata: Vec<u8>,
}

/// Opens a zip and applies the structural checks shared by wheels and zip sdists.
fn open_zip(path: &Path) -> Result<ZipArchive<BufReader<File>>, String> {
    let mut file = File::open(path).map_err(|_| "File is not a zipfile".to_owned())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    // With no comment the end-of-central-directory record is the last 22 bytes; anything after
    // it is trailing data that other readers could interpret differently.
    let mut eocd = [0u8; 22];
    if len < 22
        || file.seek(SeekFrom::End(-22)).is_err()
        || file.read_exact(&mut eocd).is_err()
        || eocd[..4] != *b"PK\x05\x06"
    {
        return Err(if len >= 22 && looks_like_zip(&mut file) {
            zip_refused("archive has a comment or trailing data")
        } else {
            "File is not a zipfile".to_owned()
        });
    }
    file.rewind().map_err(|e| e.to_string())?;
    let mut archive =
        ZipArchive::new(BufReader::new(file)).map_err(|_| "File is not a zipfile".to_owned())?;
    if archive.offset() != 0 {
        return Err(zip_refused("archive has prepended data"));
    }
    if !archive.comment().is_empty() {
        return Err(zip_refused("archive has a comment"));
    }
    if archive
        .raw_zip64_extensible_data_sector()
        .is_some_and(|d| !d.is_empty())
    {
        return Err(zip_refused("ZIP64 extensible data is not allowed"));
    }
    if archive.has_duplicate_names() {
        return Err(zip_refused("duplicate filenames"));
    }
    archive
        .validate_header_consistency()
        .map_err(|_| zip_refused("mismatched central directory"))?;
    let (mut uncompressed, mut compressed) = (0u64, 0u64);
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| zip_refused(&e.to_string()))?;
        let name = std::str::from_utf8(entry.name_raw())
            .map_err(|_| zip_refused("filename is not valid UTF-8"))?;
        if name.bytes().any(|b| b < 32 || b == 127) {
            return Err(zip_refused("filename contains control characters"));
        }
        if !matches!(
            entry.compression(),
            CompressionMethod::Stored | CompressionMethod::Deflated
        ) {
            return Err(zip_refused(
                "only STORED and DEFLATED compression is allowed",
            ));
        }
        if entry.encrypted() {
            return Err(zip_refused("encrypted members are not allowed"));
        }
        if entry.flags().is_using_data_descriptor() {
            return Err(zip_refused("data descriptors are not allowed"));
        }
        uncompressed = uncompressed.saturating_add(entry.size());
        compressed = compressed.saturating_add(entry.compressed_size());
    }
    if is_bomb(uncompressed, compressed) {
        return Err("File exceeds compression ratio of 50".to_owned());
    }
    Ok(archive)
}

fn looks_like_zip(file: &mut File) -> bool {
    let mut magic = [0u8; 4];
    file.rewind().is_ok() && file.read_exact(&mut magic).is_ok() && magic == *b"PK\x03\x04"
}

fn read_member(archive: &mut ZipArchive<BufReader<File>>, name: &str) -> Result<Vec<u8>, String> {
    let entry = archive
        .by_name(name)
        .map_err(|_| format!("Missing {name}"))?;
    let mut bytes = Vec::new();
    entry
        .take(MAX_METADATA + 1)
        .read_to_end(&mut bytes)
        .map_err(|_| format!("Unreadable {name}"))?;
    if bytes.len() as u64 > MAX_METADATA {
        return Err(format!("{name} is too large"));
    }
    Ok(bytes)
}

/// Checks the wheel `filename`, stored at `path`, whose name began `{name}-{version}-` (the raw
/// parts, as written), and returns its `METADATA`. `license_files` are the `License-File` paths
/// of the upload form.
pub fn inspect_wheel(
    path: &Path,
    filename: &str,
    name: &str,
    version: &str,
    license_files: &[String],
) -> Result<WheelContents, String> {
    let mut archive = open_zip(path)?;
    let dist_info = format!("{name}-{version}.dist-info");
    let wheel_file = format!("{dist_info}/WHEEL");
    if archive.index_for_name(&wheel_file).is_none() {
        return Err(format!(
            "Wheel '{}' does not contain the required WHEEL file.",
            filename
        ));
    }
    let metadata_file = format!("{dist_info}/METADATA");
    if archive.index_for_name(&metadata_file).is_none() {
        return Err(format!(
            "Wheel '{}' does not contain the required METADATA file: {metadata_file}",
            filename
        ));
    }
    for license in license_files {
        let member = format!("{dist_info}/licenses/{license}");
        if archive.index_for_name(&member).is_none() {
            return Err(format!(
                "License-File {license} does not exist in distribution file {member}"
            ));
        }
    }
    let entry_points = format!("{dist_info}/entry_points.txt");
    if archive.index_for_name(&entry_points).is_some() {
        let text = read_member(&mut archive, &entry_points)?;
        check_entry_points(&String::from_utf8_lossy(&text))?;
    }
    let metadata = read_member(&mut archive, &metadata_file)?;
    Ok(WheelContents { metadata })
}

/// Entry point names must match `[\w.-]+` (they become console script file names).
fn check_entry_points(text: &str) -> Result<(), String> {
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', ';', '[']) {
            continue;
        }
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(format!(
                "Invalid entry point name '{name}' in entry_points.txt"
            ));
        }
    }
    Ok(())
}

/// Checks an sdist named `filename` (`.zip` or `.tar.gz`) stored at `path`: one top-level
/// directory holding `PKG-INFO`, no sparse members, no bomb, and every `License-File` present.
pub fn inspect_sdist(path: &Path, filename: &str, license_files: &[String]) -> Result<(), String> {
    let names = if filename.to_ascii_lowercase().ends_with(".zip") {
        let archive = open_zip(path)?;
        archive
            .file_names()
            .map(|n| {
                n.map(|n| n.into_owned())
                    .map_err(|_| zip_refused("filename is not valid UTF-8"))
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        tar_member_names(path)?
    };
    let tops: HashSet<&str> = names
        .iter()
        .filter_map(|n| n.split('/').next())
        .filter(|t| !t.is_empty())
        .collect();
    if tops.len() != 1 {
        return Err("Incorrect number of top-level directories in sdist".to_owned());
    }
    let top = tops.into_iter().next().unwrap_or_default();
    let present: HashSet<&str> = names.iter().map(|n| n.trim_end_matches('/')).collect();
    if !present.contains(format!("{top}/PKG-INFO").as_str()) {
        return Err("PKG-INFO not found at top-level directory of sdist".to_owned());
    }
    for license in license_files {
        let member = format!("{top}/{license}");
        if !present.contains(member.as_str()) {
            return Err(format!(
                "License-File {license} does not exist in distribution file {member}"
            ));
        }
    }
    Ok(())
}

fn tar_member_names(path: &Path) -> Result<Vec<String>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let compressed = file.metadata().map_err(|e| e.to_string())?.len();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    let entries = archive
        .entries()
        .map_err(|_| "File is not a valid .tar.gz".to_owned())?;
    let mut names = Vec::new();
    let mut declared = 0u64;
    for entry in entries {
        let entry = entry.map_err(|_| "File is not a valid .tar.gz".to_owned())?;
        let header = entry.header();
        if header.entry_type() == tar::EntryType::GNUSparse {
            return Err("Sparse tar members are not allowed".to_owned());
        }
        // Checked before the member is read, so a bomb is refused before it is expanded.
        declared = declared.saturating_add(header.size().unwrap_or(0));
        if is_bomb(declared, compressed) {
            return Err("File exceeds compression ratio of 50".to_owned());
        }
        let name = entry.path().map_err(|_| "Invalid member name".to_owned())?;
        names.push(name.to_string_lossy().into_owned());
    }
    if names.is_empty() {
        return Err("File is not a valid .tar.gz".to_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests;
