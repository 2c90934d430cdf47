//! A wheel's RECORD: every file listed once with its hash and size, read as Python's `csv`
//! reads it; and its entry points.

use super::*;

/// The installer reads `RECORD` to know what it installed and checks each file against it;
/// a reviewer reads the files. Both must see the same wheel: every file listed once with its
/// correct hash and size, nothing listed that is absent. `RECORD` itself and its signatures
/// (`RECORD.jws`, `RECORD.p7s`) are listed without a hash, or not at all.
pub(super) fn check_record(
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
pub(super) enum RecordHash {
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
pub(super) fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
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
pub(super) fn check_entry_points(text: &str) -> Result<(), String> {
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
