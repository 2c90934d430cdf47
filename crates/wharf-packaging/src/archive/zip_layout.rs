//! The zip file's own structure, read byte by byte: the local headers must agree with the
//! central directory, and nothing may sit outside the entries (polyglot files).

use super::*;

/// What the central directory says about one entry, to hold its local header to.
pub(super) struct CentralEntry {
    pub(super) name: Vec<u8>,
    pub(super) header_start: u64,
    pub(super) method: u16,
    pub(super) crc32: u32,
    pub(super) compressed_size: u64,
    pub(super) size: u64,
}

pub(super) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(super) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(super) fn le64(b: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// Readers that walk local headers (streaming installers) and readers that trust the central
/// directory (pip, `zipfile`) must see the same files: the entries must tile the archive from
/// byte 0, each local header agreeing with its central record, the central directory must
/// follow the last entry's data and end where the end records begin. Anything else is bytes
/// one kind of reader sees and the other does not (polyglots, hidden or shadowed entries).
pub(super) fn check_zip_layout(
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
pub(super) fn zip64_local_sizes(
    mut extra: &[u8],
    size: u64,
    compressed: u64,
) -> Option<(u64, u64)> {
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
pub(super) fn central_directory_bounds(
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
pub(super) fn check_member_path(name: &str) -> Result<(), String> {
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
pub(super) fn special_file_kind(mode: u32) -> Option<&'static str> {
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
pub(super) fn path_key(name: &str) -> String {
    name.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
        .to_lowercase()
}

/// The entry count the end-of-central-directory record declares, from its ZIP64 record when it
/// has one (0 when that record cannot be read: the zip crate then refuses the archive).
pub(super) fn declared_entries(file: &mut File, len: u64, eocd: &[u8; 22]) -> u64 {
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

pub(super) fn looks_like_zip(file: &mut File) -> bool {
    let mut magic = [0u8; 4];
    file.rewind().is_ok() && file.read_exact(&mut magic).is_ok() && magic == *b"PK\x03\x04"
}
