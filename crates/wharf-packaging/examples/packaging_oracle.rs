//! What wharf-packaging makes of inputs, for e2e/test_differential.py to compare with
//! Python's `packaging`. Reads JSON lines `[op, arg, ...]` on stdin and answers each with one
//! JSON line: `{"ok": ...}` or `{"err": "..."}`.

use std::io::{BufRead, Write};

use serde_json::{Value, json};
use wharf_packaging::filename::{self, WheelFilename};
use wharf_packaging::metadata::FileMetadata;
use wharf_packaging::{archive, name, version};

fn answer(op: &str, args: &[String]) -> Result<Value, String> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    Ok(match op {
        "version" => {
            let v = version::parse(arg(0))?;
            json!({
                "str": v.to_string(),
                "canonical": version::canonicalize(&v),
                "is_prerelease": v.any_prerelease(),
                "is_local": v.is_local(),
            })
        }
        "compare" => {
            let (a, b) = (version::parse(arg(0))?, version::parse(arg(1))?);
            json!(a.cmp(&b) as i8)
        }
        "name" => json!({"normalized": name::normalize(arg(0)), "valid": name::is_valid(arg(0))}),
        "wheel" => {
            let w = WheelFilename::parse(arg(0))?;
            let mut tags = Vec::new();
            for py in &w.python_tags {
                for abi in &w.abi_tags {
                    for platform in &w.platform_tags {
                        tags.push(format!("{py}-{abi}-{platform}").to_lowercase());
                    }
                }
            }
            tags.sort();
            tags.dedup();
            let build = w.build.as_ref().map(|b| {
                let digits = b.bytes().take_while(u8::is_ascii_digit).count();
                json!([&b[..digits], &b[digits..]])
            });
            json!({
                "name": name::normalize(&w.name),
                "version": w.version.to_string(),
                "build": build,
                "tags": tags,
            })
        }
        "sdist" => {
            let (n, v) = filename::parse_sdist_filename(arg(0))?;
            json!({"name": n, "version": v.to_string()})
        }
        "metadata" => {
            let m = FileMetadata::parse(arg(0).as_bytes());
            json!({
                "metadata_version": m.metadata_version,
                "name": m.name,
                "version": m.version,
                "requires_dist": m.requires_dist,
                "requires_python": m.requires_python,
                "provides_extra": m.provides_extra,
            })
        }
        "inspect_wheel" => {
            archive::inspect_wheel(arg(0).as_ref(), arg(1), arg(2), arg(3), &[])?;
            json!(true)
        }
        "inspect_sdist" => {
            archive::inspect_sdist(arg(0).as_ref(), arg(1), &[])?;
            json!(true)
        }
        _ => return Err(format!("unknown op {op}")),
    })
}

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let request: Vec<String> = serde_json::from_str(&line).unwrap_or_default();
        let (op, args) = request
            .split_first()
            .map_or(("", &[][..]), |(o, a)| (o.as_str(), a));
        let reply = match answer(op, args) {
            Ok(value) => json!({"ok": value}),
            Err(message) => json!({"err": message}),
        };
        let _ = writeln!(out, "{reply}");
    }
    let _ = out.flush();
}
