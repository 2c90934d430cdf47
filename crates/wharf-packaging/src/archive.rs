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

/// What the central directory says about one entry, to hold its local header to.
struct CentralEntry {
    name: Vec<u8>,
    header_start: u64,
    method: u16,
    crc32: u32,
    compressed_size: u64,
    size: u64,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// Readers that walk local headers (streaming installers) and readers that trust the central
/// directory (pip, `zipfile`) must see the same files: the entries must tile the archive from
/// byte 0, each local header agreeing with its central record, the central directory must
/// follow the last entry's data and end where the end records begin. Anything else is bytes
/// one kind of reader sees and the other does not (polyglots, hidden or shadowed entries).
fn check_zip_layout(
    file: &mut File,
    entries: &mut [CentralEntry],
    len: u64,
    eocd: &[u8; 22],
) -> Result<(), String> {
    let (cd_start, cd_end, end_records) = central_directory_bounds(file, len, eocd)?;
    entries.sort_by_key(|e| e.header_start);
    let mut expected = 0u64;
    for entry in entries.iter() {
        let shown = String::from_utf8_lossy(&entry.name);
        if entry.header_start != expected {
            return Err(if entry.header_start > expected {
                format!(
                    "{} bytes of data before entry '{shown}' that belong to no entry",
                    entry.header_start - expected
                )
            } else {
                format!("entry '{shown}' overlaps the entry before it")
            });
        }
        let mut header = [0u8; 30];
        file.seek(SeekFrom::Start(entry.header_start))
            .and_then(|_| file.read_exact(&mut header))
            .map_err(|_| format!("local header of '{shown}' is truncated"))?;
        if header[..4] != *b"PK\x03\x04" {
            return Err(format!("local header of '{shown}' is missing"));
        }
        let (flags, method) = (le16(&header, 6), le16(&header, 8));
        let (name_len, extra_len) = (
            usize::from(le16(&header, 26)),
            usize::from(le16(&header, 28)),
        );
        let mut variable = vec![0u8; name_len + extra_len];
        file.read_exact(&mut variable)
            .map_err(|_| format!("local header of '{shown}' is truncated"))?;
        let (local_name, extra) = variable.split_at(name_len);
        let disagree = |what: &str| {
            format!("local header of '{shown}' disagrees with the central directory on the {what}")
        };
        if local_name != entry.name.as_slice() {
            return Err(disagree("name"));
        }
        if method != entry.method {
            return Err(disagree("compression method"));
        }
        if flags & 0x0049 != 0 {
            // Encryption (bits 0 and 6) or a data descriptor (bit 3) in the local header only.
            return Err(disagree("flags"));
        }
        if le32(&header, 14) != entry.crc32 {
            return Err(disagree("CRC-32"));
        }
        let (mut size, mut compressed) =
            (u64::from(le32(&header, 22)), u64::from(le32(&header, 18)));
        if size == u64::from(u32::MAX) || compressed == u64::from(u32::MAX) {
            (size, compressed) = zip64_local_sizes(extra, size, compressed)
                .ok_or_else(|| disagree("sizes (bad ZIP64 field)"))?;
        }
        if size != entry.size || compressed != entry.compressed_size {
            return Err(disagree("sizes"));
        }
        expected = entry
            .header_start
            .saturating_add(30 + (name_len + extra_len) as u64)
            .saturating_add(entry.compressed_size);
    }
    if expected != cd_start {
        return Err(if expected < cd_start {
            format!(
                "{} bytes of data between the last entry and the central directory",
                cd_start - expected
            )
        } else {
            "the last entry overlaps the central directory".to_owned()
        });
    }
    if cd_end != end_records {
        return Err("data between the central directory and its end record".to_owned());
    }
    Ok(())
}

/// The local header's ZIP64 extra field (0x0001): the sizes that are `0xFFFFFFFF` in the
/// fixed header, uncompressed first.
fn zip64_local_sizes(mut extra: &[u8], size: u64, compressed: u64) -> Option<(u64, u64)> {
    while extra.len() >= 4 {
        let (id, field_len) = (le16(extra, 0), usize::from(le16(extra, 2)));
        let field = extra.get(4..4 + field_len)?;
        if id == 0x0001 {
            let mut at = 0;
            let mut next = |value: u64| -> Option<u64> {
                if value != u64::from(u32::MAX) {
                    return Some(value);
                }
                let v = field.get(at..at + 8).map(|b| le64(b, 0));
                at += 8;
                v
            };
            let size = next(size)?;
            let compressed = next(compressed)?;
            return Some((size, compressed));
        }
        extra = &extra[4 + field_len..];
    }
    None
}

/// Where the central directory starts and ends, and where the end records begin (the
/// ZIP64 end record when there is one), from the end-of-central-directory record.
fn central_directory_bounds(
    file: &mut File,
    len: u64,
    eocd: &[u8; 22],
) -> Result<(u64, u64, u64), String> {
    let (size, offset) = (u64::from(le32(eocd, 12)), u64::from(le32(eocd, 16)));
    let eocd_start = len - 22;
    let mut locator = [0u8; 20];
    let has_zip64 = len >= 42
        && file.seek(SeekFrom::Start(len - 42)).is_ok()
        && file.read_exact(&mut locator).is_ok()
        && locator[..4] == *b"PK\x06\x07";
    if !has_zip64 {
        return Ok((offset, offset.saturating_add(size), eocd_start));
    }
    let record_start = le64(&locator, 8);
    let mut record = [0u8; 56];
    file.seek(SeekFrom::Start(record_start))
        .and_then(|_| file.read_exact(&mut record))
        .map_err(|_| "ZIP64 end record is unreadable".to_owned())?;
    if record[..4] != *b"PK\x06\x06" || record_start.saturating_add(56) != len - 42 {
        return Err("data around the ZIP64 end record".to_owned());
    }
    let (size, offset) = (le64(&record, 40), le64(&record, 48));
    Ok((offset, offset.saturating_add(size), record_start))
}

/// Refuses member names that land outside the directory an archive is extracted into, or
/// that readers split into different paths.
fn check_member_path(name: &str) -> Result<(), String> {
    if name.contains('\\') {
        return Err(format!("entry '{name}' uses '\\' as a path separator"));
    }
    let first = name.split('/').next().unwrap_or_default();
    let drive = first.len() == 2 && first.ends_with(':');
    if name.starts_with('/') || drive || name.split('/').any(|part| part == "..") {
        return Err(format!("entry '{name}' is outside the archive root"));
    }
    Ok(())
}

/// The file type in a Unix mode when it is neither a regular file nor a directory (a mode of
/// permissions only, as some writers store, says nothing).
fn special_file_kind(mode: u32) -> Option<&'static str> {
    match mode & 0o170000 {
        0 | 0o100000 | 0o040000 => None,
        0o120000 => Some("symbolic link"),
        0o020000 | 0o060000 => Some("device"),
        0o010000 => Some("FIFO"),
        0o140000 => Some("socket"),
        _ => Some("file of unknown type"),
    }
}

/// A member name as a case-insensitive file system sees it: lower case, without empty or
/// `.` segments or a trailing `/`.
fn path_key(name: &str) -> String {
    name.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
        .to_lowercase()
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
    check_record(&mut archive, filename, &dist_info, &budget)?;
    Ok(WheelContents { metadata })
}

/// The installer reads `RECORD` to know what it installed and checks each file against it;
/// a reviewer reads the files. Both must see the same wheel: every file listed once with its
/// correct hash and size, nothing listed that is absent. `RECORD` itself and its signatures
/// (`RECORD.jws`, `RECORD.p7s`) are listed without a hash, or not at all.
fn check_record(
    archive: &mut ZipArchive<BufReader<File>>,
    filename: &str,
    dist_info: &str,
    budget: &Budget,
) -> Result<(), String> {
    let record_file = format!("{dist_info}/RECORD");
    if archive.index_for_name(&record_file).is_none() {
        return Err(format!(
            "Wheel '{filename}' does not contain the required RECORD file: {record_file}"
        ));
    }
    let unhashed = [
        record_file.clone(),
        format!("{record_file}.jws"),
        format!("{record_file}.p7s"),
    ];
    let text = read_member(archive, &record_file, budget)?;
    let text = std::str::from_utf8(&text).map_err(|_| "RECORD is not valid UTF-8".to_owned())?;
    let rows = parse_csv(text).map_err(|e| format!("RECORD is not valid CSV: {e}"))?;
    let mut listed: HashMap<String, (String, String)> = HashMap::new();
    for (line, row) in rows.into_iter().enumerate() {
        let [path, hash, size] = <[String; 3]>::try_from(row).map_err(|row| {
            format!(
                "RECORD line {} has {} fields, expected 3 (path, hash, size)",
                line + 1,
                row.len()
            )
        })?;
        if listed.contains_key(&path) {
            return Err(format!("RECORD lists '{path}' more than once"));
        }
        listed.insert(path, (hash, size));
    }
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| zip_refused(&e.to_string()))?;
        // open_zip refused names that are not UTF-8.
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if entry.is_dir() {
            if listed.contains_key(&name) {
                return Err(format!("RECORD lists '{name}', which is a directory"));
            }
            continue;
        }
        drop(entry);
        let Some((hash, size)) = listed.remove(&name) else {
            if unhashed.contains(&name) {
                continue;
            }
            return Err(format!("RECORD does not list '{name}'"));
        };
        if unhashed.contains(&name) {
            if !hash.is_empty() {
                return Err(format!(
                    "RECORD lists a hash for '{name}', which cannot have one"
                ));
            }
            continue;
        }
        let (algorithm, expected) = hash
            .split_once('=')
            .ok_or_else(|| format!("RECORD has no hash for '{name}'"))?;
        let mut hasher = RecordHash::new(algorithm).ok_or_else(|| {
            format!("RECORD uses the hash algorithm '{algorithm}' for '{name}': use sha256")
        })?;
        let entry = archive
            .by_index(index)
            .map_err(|_| format!("Unreadable {name}"))?;
        let mut reader = budget.reader(entry);
        let mut buffer = vec![0u8; 64 * 1024];
        let mut actual_size = 0u64;
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) if budget.exceeded.get() => return Err(RATIO_EXCEEDED.to_owned()),
                Err(_) => return Err(format!("Unreadable {name}")),
            };
            hasher.update(&buffer[..n]);
            actual_size += n as u64;
        }
        if hasher.finish() != expected {
            return Err(format!("RECORD has the wrong hash for '{name}'"));
        }
        if size != actual_size.to_string() {
            return Err(format!(
                "RECORD gives the size of '{name}' as '{size}', but it is {actual_size} bytes"
            ));
        }
    }
    if let Some(absent) = listed.keys().min() {
        return Err(format!(
            "RECORD lists '{absent}', which is not in the wheel"
        ));
    }
    Ok(())
}

/// The hashes the wheel spec allows in `RECORD` (sha256 or stronger), written as unpadded
/// URL-safe base64.
enum RecordHash {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl RecordHash {
    fn new(algorithm: &str) -> Option<RecordHash> {
        use sha2::Digest;
        Some(match algorithm {
            "sha256" => RecordHash::Sha256(sha2::Sha256::new()),
            "sha384" => RecordHash::Sha384(sha2::Sha384::new()),
            "sha512" => RecordHash::Sha512(sha2::Sha512::new()),
            _ => return None,
        })
    }

    fn update(&mut self, data: &[u8]) {
        use sha2::Digest;
        match self {
            RecordHash::Sha256(h) => h.update(data),
            RecordHash::Sha384(h) => h.update(data),
            RecordHash::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> String {
        use base64::Engine;
        use sha2::Digest;
        let digest = match self {
            RecordHash::Sha256(h) => h.finalize().to_vec(),
            RecordHash::Sha384(h) => h.finalize().to_vec(),
            RecordHash::Sha512(h) => h.finalize().to_vec(),
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    }
}

/// CSV as Python's `csv.reader` reads it with the default dialect (which is what writes and
/// reads `RECORD`): `,` between fields, `"` quoting with `""` for a quote, rows ending in
/// `\n` or `\r\n`, blank lines skipped.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    // Whether the current row has any field yet (a blank line has none).
    let mut started = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                quoted = true;
                started = true;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                started = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                if started || !field.is_empty() {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                started = false;
            }
            _ => {
                field.push(c);
                started = true;
            }
        }
    }
    if quoted {
        return Err("unexpected end of data inside quotes".to_owned());
    }
    if started || !field.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
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
    let mut files: HashSet<String> = HashSet::new();
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
        let shown = String::from_utf8_lossy(&name).into_owned();
        check_member_path(&shown).map_err(|e| format!("Tar archive not accepted: {e}"))?;
        let what = match kind {
            tar::EntryType::Regular => None,
            tar::EntryType::Directory => Some(None),
            tar::EntryType::Symlink => Some(Some("symbolic link")),
            tar::EntryType::Link => Some(Some("hard link")),
            tar::EntryType::Char | tar::EntryType::Block => Some(Some("device")),
            tar::EntryType::Fifo => Some(Some("FIFO")),
            _ => Some(Some("member of an unsupported type")),
        };
        match what {
            Some(Some(kind)) => {
                return Err(format!(
                    "Tar archive not accepted: member '{shown}' is a {kind}"
                ));
            }
            // Directories may repeat harmlessly; files may not: readers keep different copies.
            Some(None) => {}
            None => {
                let key = path_key(&shown);
                if !files.insert(key) {
                    return Err(format!(
                        "Tar archive not accepted: duplicate filenames after case folding and path normalisation: '{shown}'"
                    ));
                }
            }
        }
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
