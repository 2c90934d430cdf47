//! Core metadata: a file is read without panicking; whatever the upload form validates
//! from a file's own fields matches that file, and matches the file the form renders to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_packaging::metadata::{FileMetadata, Form, Metadata};

/// The upload form a client would send for these file headers (key: value, one a line).
fn form_of(text: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = match key.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "classifier" => "classifiers".to_owned(),
            "project_url" => "project_urls".to_owned(),
            other => other.to_owned(),
        };
        fields.push((key, value.trim().to_owned()));
    }
    fields
}

fn render(meta: &Metadata) -> String {
    let mut out = format!(
        "Metadata-Version: {}\nName: {}\nVersion: {}\n",
        meta.metadata_version, meta.name, meta.version
    );
    for r in &meta.requires_dist {
        out.push_str(&format!("Requires-Dist: {r}\n"));
    }
    if let Some(p) = &meta.requires_python {
        out.push_str(&format!("Requires-Python: {p}\n"));
    }
    for e in &meta.provides_extra {
        out.push_str(&format!("Provides-Extra: {e}\n"));
    }
    out.push('\n');
    out.push_str(meta.description.as_deref().unwrap_or_default());
    out
}

fuzz_target!(|data: &[u8]| {
    let file = FileMetadata::parse(data);
    let _ = file.is_at_least(2, 2);
    let text = String::from_utf8_lossy(data);
    let fields = form_of(&text);
    if let Ok(meta) = Metadata::from_form(&Form::new(&fields)) {
        let single_line = |v: &str| !v.contains(['\n', '\r']);
        let plain = meta.requires_dist.iter().all(|r| single_line(r))
            && meta.provides_extra.iter().all(|e| single_line(e))
            && meta.requires_python.as_deref().is_none_or(single_line);
        if plain {
            let rendered = render(&meta);
            FileMetadata::parse(rendered.as_bytes())
                .check_matches(&meta, "METADATA")
                .unwrap_or_else(|e| panic!("{rendered:?}: {e}"));
        }
    }
    // The form made of the file's own fields, when valid, matches the file.
    let mut own: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            own.push((k.to_owned(), v.clone()));
        }
    };
    push("metadata_version", &file.metadata_version);
    push("name", &file.name);
    push("version", &file.version);
    push("requires_python", &file.requires_python);
    for r in &file.requires_dist {
        own.push(("requires_dist".to_owned(), r.clone()));
    }
    for e in &file.provides_extra {
        own.push(("provides_extra".to_owned(), e.clone()));
    }
    if let Ok(meta) = Metadata::from_form(&Form::new(&own)) {
        file.check_matches(&meta, "METADATA")
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
});
