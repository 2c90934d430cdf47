//! Source distributions (.tar.gz and .zip): one top-level directory, PKG-INFO, and tar members
//! read raw so that oversized header members are refused before anything buffers them.

use super::*;

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
