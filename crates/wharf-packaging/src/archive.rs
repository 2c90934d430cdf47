//! Inspection of uploaded archives (`warehouse/forklift/legacy.py`, `utils/zipfiles.py`):
//! structural checks, bomb limits, required members, and the wheel's `METADATA` for PEP 658.
//! Every error is the message to show after "Invalid distribution file. ".

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use zip::{CompressionMethod, ZipArchive};

/// Archives that expand past this size must not also compress better than [`MAX_RATIO`].
pub const MAX_UNCOMPRESSED: u64 = 64 * 1024 * 1024;
pub const MAX_RATIO: u64 = 50;
/// No single metadata file we read may be larger than this.
const MAX_METADATA: u64 = 16 * 1024 * 1024;
/// Tar members that describe the next member (GNU long names and links, PAX headers) are
/// buffered whole by readers, so they may not be larger than this.
pub const MAX_HEADER_MEMBER: u64 = 64 * 1024;
/// No archive may hold more members than this (large real wheels hold a few tens of thousands).
pub const MAX_MEMBERS: u64 = 100_000;
const ZIP_DOCS: &str = "See https://docs.pypi.org/archives for more information.";
const RATIO_EXCEEDED: &str = "File exceeds compression ratio of 50";

fn zip_refused(reason: &str) -> String {
    format!("ZIP archive not accepted: {reason}. {ZIP_DOCS}")
}

fn is_bomb(uncompressed: u64, compressed: u64) -> bool {
    uncompressed > MAX_UNCOMPRESSED && uncompressed > compressed.saturating_mul(MAX_RATIO)
}

/// How many decompressed bytes one archive may produce while it is read: the larger of the
/// fixed limit and [`MAX_RATIO`] times its size on disk. Declared sizes can lie (and tar's own
/// headers are never declared), so this counts what the decoder actually yields.
struct Budget {
    remaining: Cell<u64>,
    exceeded: Cell<bool>,
}

impl Budget {
    fn for_compressed(compressed: u64) -> Budget {
        Budget {
            remaining: Cell::new(MAX_UNCOMPRESSED.max(compressed.saturating_mul(MAX_RATIO))),
            exceeded: Cell::new(false),
        }
    }

    fn reader<R: Read>(&self, inner: R) -> Budgeted<'_, R> {
        Budgeted {
            inner,
            budget: self,
        }
    }
}

/// A reader over decompressed bytes that fails once its [`Budget`] is spent, so whoever
/// reads through it (the tar crate's own buffering of header members included) stops there.
struct Budgeted<'a, R> {
    inner: R,
    budget: &'a Budget,
}

impl<R: Read> Read for Budgeted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let remaining = self.budget.remaining.get();
        if n as u64 > remaining {
            self.budget.exceeded.set(true);
            return Err(std::io::Error::other(RATIO_EXCEEDED));
        }
        self.budget.remaining.set(remaining - n as u64);
        Ok(n)
    }
}

fn too_many_members() -> String {
    format!("Archive has more than {MAX_MEMBERS} members")
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
    // Checked before the zip crate reads the central directory into memory.
    if declared_entries(&mut file, len, &eocd) > MAX_MEMBERS {
        return Err(zip_refused(&too_many_members()));
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
    if archive.len() as u64 > MAX_MEMBERS {
        return Err(zip_refused(&too_many_members()));
    }
    if archive.has_duplicate_names() {
        return Err(zip_refused("duplicate filenames"));
    }
    let (mut uncompressed, mut compressed) = (0u64, 0u64);
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut entries = Vec::with_capacity(archive.len());
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
        check_member_path(name).map_err(|e| zip_refused(&e))?;
        if let Some(kind) = entry.unix_mode().and_then(special_file_kind) {
            return Err(zip_refused(&format!("entry '{name}' is a {kind}")));
        }
        if let Some(other) = seen.insert(path_key(name), name.to_owned()) {
            return Err(zip_refused(&format!(
                "duplicate filenames after case folding and path normalisation: '{other}' and '{name}'"
            )));
        }
        entries.push(CentralEntry {
            name: entry.name_raw().to_vec(),
            header_start: entry.header_start(),
            // Only these two are left (the others were refused above).
            method: if entry.compression() == CompressionMethod::Stored {
                0
            } else {
                8
            },
            crc32: entry.crc32(),
            compressed_size: entry.compressed_size(),
            size: entry.size(),
        });
        uncompressed = uncompressed.saturating_add(entry.size());
        compressed = compressed.saturating_add(entry.compressed_size());
    }
    if is_bomb(uncompressed, compressed) {
        return Err(RATIO_EXCEEDED.to_owned());
    }
    let mut raw = File::open(path).map_err(|e| e.to_string())?;
    check_zip_layout(&mut raw, &mut entries, len, &eocd).map_err(|e| zip_refused(&e))?;
    // The zip crate's own comparison, after ours that names what differs.
    archive
        .validate_header_consistency()
        .map_err(|_| zip_refused("mismatched central directory"))?;
    Ok(archive)
}

/// Reads one member, at most [`MAX_METADATA`] of it, counting what it inflates to in `budget`.
fn read_member(
    archive: &mut ZipArchive<BufReader<File>>,
    name: &str,
    budget: &Budget,
) -> Result<Vec<u8>, String> {
    let entry = archive
        .by_name(name)
        .map_err(|_| format!("Missing {name}"))?;
    let mut bytes = Vec::new();
    let read = budget
        .reader(entry.take(MAX_METADATA + 1))
        .read_to_end(&mut bytes);
    if budget.exceeded.get() {
        return Err(RATIO_EXCEEDED.to_owned());
    }
    read.map_err(|_| format!("Unreadable {name}"))?;
    if bytes.len() as u64 > MAX_METADATA {
        return Err(format!("{name} is too large"));
    }
    Ok(bytes)
}

/// The size of the archive at `path`, on disk.
fn compressed_size(path: &Path) -> Result<u64, String> {
    Ok(std::fs::metadata(path).map_err(|e| e.to_string())?.len())
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
    let budget = Budget::for_compressed(compressed_size(path)?);
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
        let text = read_member(&mut archive, &entry_points, &budget)?;
        check_entry_points(&String::from_utf8_lossy(&text))?;
    }
    let metadata = read_member(&mut archive, &metadata_file, &budget)?;
    check_record(&mut archive, filename, &dist_info, &budget)?;
    Ok(WheelContents { metadata })
}

mod record;
mod sdist;
mod zip_layout;

use record::*;
pub use sdist::{SdistContents, inspect_sdist};
use zip_layout::*;

#[cfg(test)]
mod tests;
