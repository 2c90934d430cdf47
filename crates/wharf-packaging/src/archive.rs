//! Inspection of uploaded archives (`warehouse/forklift/legacy.py`, `utils/zipfiles.py`):
//! structural checks, bomb limits, required members, and the wheel's `METADATA` for PEP 658.
//! Every error is the message to show after "Invalid distribution file. ".

use std::cell::Cell;
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
        return Err(RATIO_EXCEEDED.to_owned());
    }
    Ok(archive)
}

/// The entry count the end-of-central-directory record declares, from its ZIP64 record when it
/// has one (0 when that record cannot be read: the zip crate then refuses the archive).
fn declared_entries(file: &mut File, len: u64, eocd: &[u8; 22]) -> u64 {
    let count = u16::from_le_bytes([eocd[10], eocd[11]]);
    if count != u16::MAX || len < 42 {
        return u64::from(count);
    }
    let mut locator = [0u8; 20];
    if file.seek(SeekFrom::End(-42)).is_err()
        || file.read_exact(&mut locator).is_err()
        || locator[..4] != *b"PK\x06\x07"
    {
        return u64::from(count);
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&locator[8..16]);
    let mut record = [0u8; 40];
    if file
        .seek(SeekFrom::Start(u64::from_le_bytes(offset)))
        .is_err()
        || file.read_exact(&mut record).is_err()
        || record[..4] != *b"PK\x06\x06"
    {
        return 0;
    }
    let mut total = [0u8; 8];
    total.copy_from_slice(&record[32..40]);
    u64::from_le_bytes(total)
}

fn looks_like_zip(file: &mut File) -> bool {
    let mut magic = [0u8; 4];
    file.rewind().is_ok() && file.read_exact(&mut magic).is_ok() && magic == *b"PK\x03\x04"
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

/// What the index needs from an sdist: its `PKG-INFO`, when the archive holds one as a file.
#[derive(Debug)]
pub struct SdistContents {
    pub pkg_info: Option<Vec<u8>>,
}

/// Checks an sdist named `filename` (`.zip` or `.tar.gz`) stored at `path`: one top-level
/// directory holding `PKG-INFO`, no sparse members, no bomb, and every `License-File` present.
pub fn inspect_sdist(
    path: &Path,
    filename: &str,
    license_files: &[String],
) -> Result<SdistContents, String> {
    let mut layout = Layout::new(license_files);
    let pkg_info = if filename.to_ascii_lowercase().ends_with(".zip") {
        let mut archive = open_zip(path)?;
        let mut pkg_info_member = None;
        for name in archive.file_names() {
            let name = name.map_err(|_| zip_refused("filename is not valid UTF-8"))?;
            if layout.add(&name)? {
                pkg_info_member = Some(name.into_owned());
            }
        }
        layout.finish()?;
        let budget = Budget::for_compressed(compressed_size(path)?);
        match pkg_info_member {
            Some(member) => Some(read_member(&mut archive, &member, &budget)?),
            None => None,
        }
    } else {
        let pkg_info = scan_tar(path, &mut layout)?;
        layout.finish()?;
        pkg_info
    };
    Ok(SdistContents { pkg_info })
}

/// What the sdist checks need from the member names, kept small whatever the archive holds:
/// the first top-level directory, whether there are others, and which wanted files it has.
struct Layout<'a> {
    license_files: &'a [String],
    members: u64,
    top: Option<String>,
    several_tops: bool,
    pkg_info: bool,
    licenses: HashSet<&'a str>,
}

impl<'a> Layout<'a> {
    fn new(license_files: &'a [String]) -> Layout<'a> {
        Layout {
            license_files,
            members: 0,
            top: None,
            several_tops: false,
            pkg_info: false,
            licenses: HashSet::new(),
        }
    }

    /// Records a member's name; `true` when it is the sdist's `PKG-INFO`.
    fn add(&mut self, name: &str) -> Result<bool, String> {
        self.members += 1;
        if self.members > MAX_MEMBERS {
            return Err(too_many_members());
        }
        let name = name.trim_end_matches('/');
        let (top, rest) = name.split_once('/').unwrap_or((name, ""));
        if top.is_empty() {
            return Ok(false);
        }
        match &self.top {
            None => self.top = Some(top.to_owned()),
            Some(first) if first != top => {
                self.several_tops = true;
                return Ok(false);
            }
            Some(_) => {}
        }
        if let Some(license) = self.license_files.iter().find(|l| *l == rest) {
            self.licenses.insert(license);
        }
        let is_pkg_info = rest == "PKG-INFO";
        self.pkg_info |= is_pkg_info;
        Ok(is_pkg_info)
    }

    fn finish(&self) -> Result<(), String> {
        let Some(top) = self.top.as_deref().filter(|_| !self.several_tops) else {
            return Err("Incorrect number of top-level directories in sdist".to_owned());
        };
        if !self.pkg_info {
            return Err("PKG-INFO not found at top-level directory of sdist".to_owned());
        }
        if let Some(missing) = self
            .license_files
            .iter()
            .find(|l| !self.licenses.contains(l.as_str()))
        {
            return Err(format!(
                "License-File {missing} does not exist in distribution file {top}/{missing}"
            ));
        }
        Ok(())
    }
}

/// Reads a .tar.gz once, through a [`Budget`] on the decompressed bytes, feeding member names
/// to `layout`. Returns the `PKG-INFO` it found.
fn scan_tar(path: &Path, layout: &mut Layout<'_>) -> Result<Option<Vec<u8>>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let compressed = file.metadata().map_err(|e| e.to_string())?.len();
    let budget = Budget::for_compressed(compressed);
    let decoder = budget.reader(flate2::read::GzDecoder::new(BufReader::new(file)));
    let mut archive = tar::Archive::new(decoder);
    let scanned = scan_tar_members(&mut archive, compressed, layout);
    if budget.exceeded.get() {
        return Err(RATIO_EXCEEDED.to_owned());
    }
    scanned
}

fn not_a_tar() -> String {
    "File is not a valid .tar.gz".to_owned()
}

/// Walks the raw members, so that the ones describing the next member (GNU long names and
/// links, PAX headers) are seen, and refused when large, before anything buffers them. Their
/// meaning is applied here the way tar readers do; anything that would make readers disagree
/// about the layout (PAX sizes, global paths) is refused.
fn scan_tar_members<R: Read>(
    archive: &mut tar::Archive<R>,
    compressed: u64,
    layout: &mut Layout<'_>,
) -> Result<Option<Vec<u8>>, String> {
    let entries = archive.entries().map_err(|_| not_a_tar())?.raw(true);
    let mut declared = 0u64;
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link = false;
    // Some(path, if it sets one) once a local PAX header was read for the next member.
    let mut pax: Option<Option<Vec<u8>>> = None;
    let mut pkg_info = None;
    let mut any_member = false;
    for entry in entries {
        let mut entry = entry.map_err(|_| not_a_tar())?;
        let kind = entry.header().entry_type();
        let size = entry.size();
        if kind.is_gnu_sparse() {
            return Err("Sparse tar members are not allowed".to_owned());
        }
        let describes_next = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        if describes_next && size > MAX_HEADER_MEMBER {
            return Err(format!(
                "Tar long name, long link or PAX header member of {size} bytes: at most {} KiB is allowed",
                MAX_HEADER_MEMBER / 1024
            ));
        }
        // Checked before the member is read, so a bomb is refused before it is expanded.
        declared = declared.saturating_add(size);
        if is_bomb(declared, compressed) {
            return Err(RATIO_EXCEEDED.to_owned());
        }
        if describes_next {
            let mut data = Vec::new();
            (&mut entry)
                .take(MAX_HEADER_MEMBER)
                .read_to_end(&mut data)
                .map_err(|_| not_a_tar())?;
            if kind.is_gnu_longname() {
                if long_name.is_some() {
                    return Err(not_a_tar());
                }
                if data.last() == Some(&0) {
                    data.pop();
                }
                long_name = Some(data);
            } else if kind.is_gnu_longlink() {
                if long_link {
                    return Err(not_a_tar());
                }
                long_link = true;
            } else {
                let global = kind.is_pax_global_extensions();
                if !global && pax.is_some() {
                    return Err(not_a_tar());
                }
                let path = pax_path(&data, global)?;
                if !global {
                    pax = Some(path);
                }
            }
            // Not counted as members (GNU tar's posix format writes one per file): each is
            // bounded, and what they expand to is in the budget.
            continue;
        }
        let name = match (long_name.take(), pax.take().flatten()) {
            (Some(name), _) | (None, Some(name)) => name,
            (None, None) => entry.header().path_bytes().into_owned(),
        };
        long_link = false;
        any_member = true;
        if layout.add(&String::from_utf8_lossy(&name))? {
            let mut data = Vec::new();
            (&mut entry)
                .take(MAX_METADATA + 1)
                .read_to_end(&mut data)
                .map_err(|_| not_a_tar())?;
            if data.len() as u64 > MAX_METADATA {
                return Err("PKG-INFO is too large".to_owned());
            }
            pkg_info = Some(data);
        }
    }
    if !any_member || long_name.is_some() || long_link || pax.is_some() {
        return Err(not_a_tar());
    }
    Ok(pkg_info)
}

/// The `path` a PAX header sets, refusing records that would make tar readers disagree:
/// sizes (this reader walks raw headers) and sparse files; in a global header, paths too.
fn pax_path(data: &[u8], global: bool) -> Result<Option<Vec<u8>>, String> {
    let mut path = None;
    for record in tar::PaxExtensions::new(data) {
        let record = record.map_err(|_| not_a_tar())?;
        let key = record.key_bytes();
        if key.starts_with(b"GNU.sparse.") {
            return Err("Sparse tar members are not allowed".to_owned());
        }
        if key == b"size" || (global && matches!(key, b"path" | b"linkpath")) {
            return Err(format!(
                "PAX {} records are not allowed{}",
                String::from_utf8_lossy(key),
                if global { " in global headers" } else { "" }
            ));
        }
        if key == b"path" {
            path = Some(record.value_bytes().to_owned());
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests;
