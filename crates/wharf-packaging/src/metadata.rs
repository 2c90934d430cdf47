//! Core metadata as the upload form carries it (field names lower case with `_`), validated
//! with the rules of `packaging.metadata` and warehouse.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::LazyLock;

use crate::name;
use crate::version::{self, Version};

const SPEC_LINK: &str =
    "See https://packaging.python.org/specifications/core-metadata for more information.";

/// The metadata versions an index accepts.
pub const SUPPORTED_METADATA_VERSIONS: &[&str] =
    &["1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.5"];

static CLASSIFIERS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("classifiers.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect()
});
static DEPRECATED_CLASSIFIERS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("deprecated_classifiers.txt").lines().collect());

/// Validated release metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub metadata_version: String,
    pub name: String,
    pub version: String,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub description_content_type: Option<String>,
    pub keywords: Option<String>,
    pub home_page: Option<String>,
    pub download_url: Option<String>,
    pub author: Option<String>,
    pub author_email: Option<String>,
    pub maintainer: Option<String>,
    pub maintainer_email: Option<String>,
    pub license: Option<String>,
    pub license_expression: Option<String>,
    pub requires_python: Option<String>,
    pub license_files: Vec<String>,
    pub classifiers: Vec<String>,
    pub platforms: Vec<String>,
    pub supported_platforms: Vec<String>,
    pub requires_dist: Vec<String>,
    pub provides_dist: Vec<String>,
    pub obsoletes_dist: Vec<String>,
    pub requires_external: Vec<String>,
    pub project_urls: Vec<String>,
    pub provides_extra: Vec<String>,
    pub dynamic: Vec<String>,
}

/// (form key, Field name in METADATA, metadata version that introduced it, multiple use).
const FIELDS: &[(&str, &str, &str, bool)] = &[
    ("author", "Author", "1.0", false),
    ("author_email", "Author-email", "1.0", false),
    ("classifiers", "Classifier", "1.1", true),
    ("description", "Description", "1.0", false),
    (
        "description_content_type",
        "Description-Content-Type",
        "2.1",
        false,
    ),
    ("download_url", "Download-URL", "1.1", false),
    ("dynamic", "Dynamic", "2.2", true),
    ("home_page", "Home-page", "1.0", false),
    ("keywords", "Keywords", "1.0", false),
    ("license", "License", "1.0", false),
    ("license_expression", "License-Expression", "2.4", false),
    ("license_file", "License-File", "2.4", true),
    ("maintainer", "Maintainer", "1.2", false),
    ("maintainer_email", "Maintainer-email", "1.2", false),
    ("obsoletes_dist", "Obsoletes-Dist", "1.2", true),
    ("platform", "Platform", "1.0", true),
    ("project_urls", "Project-URL", "1.2", true),
    ("provides_dist", "Provides-Dist", "1.2", true),
    ("provides_extra", "Provides-Extra", "2.1", true),
    ("requires_dist", "Requires-Dist", "1.2", true),
    ("requires_external", "Requires-External", "1.2", true),
    ("requires_python", "Requires-Python", "1.2", false),
    ("summary", "Summary", "1.0", false),
    ("supported_platform", "Supported-Platform", "1.1", true),
];

/// Fields that may be marked `Dynamic` (everything but Name, Version and Metadata-Version).
const DYNAMIC_FORBIDDEN: &[&str] = &["name", "version", "metadata-version"];

fn invalid(value: &str, field: &str, message: &str) -> String {
    format!("'{value}' is an invalid value for {field}. Error: {message} {SPEC_LINK}")
}

/// The form's fields, looked up by key. Values equal to "UNKNOWN" or empty are dropped, as
/// warehouse does.
pub struct Form<'a> {
    fields: &'a [(String, String)],
}

impl<'a> Form<'a> {
    pub fn new(fields: &'a [(String, String)]) -> Form<'a> {
        Form { fields }
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, v)| k == key && v != "UNKNOWN" && !v.trim().is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn one(&self, key: &str) -> Option<String> {
        self.all(key).into_iter().next()
    }
}

fn metadata_version_rank(v: &str) -> Option<usize> {
    SUPPORTED_METADATA_VERSIONS.iter().position(|s| *s == v)
}

impl Metadata {
    /// Reads and validates the metadata of an upload form. The error is the message to show.
    /// Fields are checked in warehouse's order: Metadata-Version, Name, Version, then the rest
    /// alphabetically.
    pub fn from_form(form: &Form<'_>) -> Result<Metadata, String> {
        let metadata_version = form.one("metadata_version").unwrap_or_default();
        let declared = metadata_version_rank(&metadata_version).ok_or_else(|| {
            invalid(
                &metadata_version,
                "Metadata-Version",
                "Use a known metadata version (1.0, 1.1, 1.2, 2.1, 2.2, 2.3, 2.4, 2.5).",
            )
        })?;
        let project_name = form.one("name").unwrap_or_default();
        if !name::is_valid(&project_name) {
            return Err(invalid(
                &project_name,
                "Name",
                "Start and end with a letter or numeral containing only ASCII numeric and '.', '_' and '-'.",
            ));
        }
        let raw_version = form.one("version").unwrap_or_default();
        let parsed: Version = version::parse(&raw_version).map_err(|_| {
            invalid(
                &raw_version,
                "Version",
                "Use a version compliant with PEP 440 (https://peps.python.org/pep-0440/).",
            )
        })?;
        if parsed.is_local() {
            return Err(invalid(
                &raw_version,
                "Version",
                &format!("The use of local versions in '{raw_version}' is not allowed."),
            ));
        }

        for (key, field, introduced, _) in FIELDS {
            let present = !form.all(key).is_empty();
            let introduced_rank = metadata_version_rank(introduced).unwrap_or(0);
            if present && introduced_rank > declared {
                return Err(format!(
                    "{} introduced in metadata version {introduced}, not {metadata_version}. {SPEC_LINK}",
                    field.to_ascii_lowercase()
                ));
            }
        }

        let meta = Metadata {
            metadata_version,
            name: project_name,
            version: parsed.to_string(),
            summary: form.one("summary"),
            description: form.one("description"),
            description_content_type: form.one("description_content_type"),
            keywords: form.one("keywords"),
            home_page: form.one("home_page"),
            download_url: form.one("download_url"),
            author: form.one("author"),
            author_email: form.one("author_email"),
            maintainer: form.one("maintainer"),
            maintainer_email: form.one("maintainer_email"),
            license: form.one("license"),
            license_expression: form.one("license_expression"),
            requires_python: form.one("requires_python"),
            license_files: form.all("license_file"),
            classifiers: form.all("classifiers"),
            platforms: form.all("platform"),
            supported_platforms: form.all("supported_platform"),
            requires_dist: form.all("requires_dist"),
            provides_dist: form.all("provides_dist"),
            obsoletes_dist: form.all("obsoletes_dist"),
            requires_external: form.all("requires_external"),
            project_urls: form.all("project_urls"),
            provides_extra: form.all("provides_extra"),
            dynamic: form.all("dynamic"),
        };
        meta.validate_fields()?;
        Ok(meta)
    }

    /// The per-field rules, in alphabetical order of the form keys.
    fn validate_fields(&self) -> Result<(), String> {
        if let Some(email) = &self.author_email {
            check_emails(email, "Author-email")?;
        }
        for classifier in &self.classifiers {
            if DEPRECATED_CLASSIFIERS.contains(classifier.as_str()) {
                return Err(invalid(
                    classifier,
                    "Classifier",
                    "Classifier has been deprecated, see https://pypi.org/classifiers/ for a list of valid classifiers.",
                ));
            }
            if !CLASSIFIERS.contains(classifier.as_str()) && !classifier.starts_with("Private ::") {
                return Err(invalid(
                    classifier,
                    "Classifier",
                    "Classifier is not a valid classifier, see https://pypi.org/classifiers/ for a list of valid classifiers.",
                ));
            }
        }
        if let Some(ct) = &self.description_content_type {
            check_content_type(ct)?;
        }
        if let Some(url) = &self.download_url {
            check_url(url, "Download-URL")?;
        }
        for field in &self.dynamic {
            let lower = field.to_ascii_lowercase();
            let known = FIELDS
                .iter()
                .any(|(_, f, _, _)| f.eq_ignore_ascii_case(&lower));
            if DYNAMIC_FORBIDDEN.contains(&lower.as_str()) || !known {
                return Err(invalid(
                    field,
                    "Dynamic",
                    "Dynamic fields must be known core-metadata fields other than Name, Version and Metadata-Version.",
                ));
            }
        }
        if let Some(url) = &self.home_page {
            check_url(url, "Home-page")?;
        }
        if self.license.is_some() && self.license_expression.is_some() {
            return Err(format!(
                "License is deprecated when License-Expression is present. Only License-Expression should be present. {SPEC_LINK}"
            ));
        }
        for path in &self.license_files {
            if path.starts_with('/') || path.split('/').any(|p| p == "..") || path.contains('\\') {
                return Err(invalid(
                    path,
                    "License-File",
                    "License-File paths must be relative and use '/' separators, without '..'.",
                ));
            }
        }
        if let Some(email) = &self.maintainer_email {
            check_emails(email, "Maintainer-email")?;
        }
        for entry in &self.project_urls {
            let (label, url) = entry.split_once(',').ok_or_else(|| {
                invalid(
                    entry,
                    "Project-URL",
                    "Use both a label and an URL, separated by a comma.",
                )
            })?;
            if label.trim().chars().count() > 32 {
                return Err(invalid(
                    entry,
                    "Project-URL",
                    "Use 32 characters or less for the label.",
                ));
            }
            check_url(url.trim(), "Project-URL")?;
        }
        for extra in &self.provides_extra {
            if !name::is_valid(extra) {
                return Err(invalid(extra, "Provides-Extra", "Use a valid extra name."));
            }
        }
        for requirement in &self.requires_dist {
            check_requirement(requirement)?;
        }
        if let Some(spec) = &self.requires_python {
            version::parse_specifiers(spec).map_err(|e| {
                invalid(
                    spec,
                    "Requires-Python",
                    &format!("Use a valid version specifier set: {e}."),
                )
            })?;
        }
        if let Some(summary) = &self.summary {
            if summary.chars().count() > 512 {
                return Err(invalid(summary, "Summary", "Use 512 characters or less."));
            }
            if summary.contains(['\n', '\r']) {
                return Err(invalid(summary, "Summary", "Use a single line only."));
            }
        }
        Ok(())
    }
}

/// What a distribution's own core metadata (a wheel's `METADATA`, an sdist's `PKG-INFO`) says
/// about the fields installers act on, as written in the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileMetadata {
    pub metadata_version: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub requires_dist: Vec<String>,
    pub requires_python: Option<String>,
    pub provides_extra: Vec<String>,
}

impl FileMetadata {
    /// Reads the headers of an RFC 822 style metadata file (up to the first empty line, which
    /// starts the description). Continuation lines are joined to their field; values that the
    /// upload form would drop ("UNKNOWN", empty) are dropped here too.
    pub fn parse(bytes: &[u8]) -> FileMetadata {
        let text = String::from_utf8_lossy(bytes);
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if line.trim().is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push('\n');
                    value.push_str(line.trim());
                }
                continue;
            }
            if let Some((key, value)) = line.split_once(':') {
                headers.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let all = |key: &str| -> Vec<String> {
            headers
                .iter()
                .filter(|(k, v)| k == key && v != "UNKNOWN" && !v.is_empty())
                .map(|(_, v)| v.clone())
                .collect()
        };
        let one = |key: &str| all(key).into_iter().next();
        FileMetadata {
            metadata_version: one("metadata-version"),
            name: one("name"),
            version: one("version"),
            requires_dist: all("requires-dist"),
            requires_python: one("requires-python"),
            provides_extra: all("provides-extra"),
        }
    }

    /// Whether the file declares at least metadata version `major.minor` (PEP 643 makes an
    /// sdist's `PKG-INFO` binding from 2.2).
    pub fn is_at_least(&self, major: u32, minor: u32) -> bool {
        let Some((found_major, found_minor)) = self
            .metadata_version
            .as_deref()
            .and_then(|v| v.split_once('.'))
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        else {
            return false;
        };
        (found_major, found_minor) >= (major, minor)
    }

    /// Refuses a file whose name or version differs from the upload form's, or whose
    /// dependencies, Python requirement or extras do: the index shows the form, installers use
    /// the file. `source` names the file ("METADATA", "PKG-INFO") in the message.
    pub fn check_matches(&self, form: &Metadata, source: &str) -> Result<(), String> {
        let mismatch = |field: &str, file: &str, form: &str| {
            format!(
                "{field} in the distribution's {source} does not match the upload form: {} in the file, {} in the form.",
                shorten(file),
                shorten(form)
            )
        };
        let name = self.name.as_deref().unwrap_or_default();
        if name::normalize(name) != name::normalize(&form.name) {
            return Err(mismatch("Name", &quoted(&[name]), &quoted(&[&form.name])));
        }
        let raw_version = self.version.as_deref().unwrap_or_default();
        let same_version = match (version::parse(raw_version), version::parse(&form.version)) {
            (Ok(file), Ok(form)) => file == form,
            _ => false,
        };
        if !same_version {
            return Err(mismatch(
                "Version",
                &quoted(&[raw_version]),
                &quoted(&[&form.version]),
            ));
        }
        let requirements = |list: &[String]| sorted(list.iter().map(|r| canonical_requirement(r)));
        if requirements(&self.requires_dist) != requirements(&form.requires_dist) {
            return Err(mismatch(
                "Requires-Dist",
                &quoted(&self.requires_dist),
                &quoted(&form.requires_dist),
            ));
        }
        let python = |spec: &Option<String>| spec.as_deref().map(canonical_specifiers);
        if python(&self.requires_python) != python(&form.requires_python) {
            return Err(mismatch(
                "Requires-Python",
                &quoted(self.requires_python.as_slice()),
                &quoted(form.requires_python.as_slice()),
            ));
        }
        let extras = |list: &[String]| {
            let mut names: Vec<String> = list.iter().map(|e| name::normalize(e)).collect();
            names.sort();
            names.dedup();
            names
        };
        if extras(&self.provides_extra) != extras(&form.provides_extra) {
            return Err(mismatch(
                "Provides-Extra",
                &quoted(&self.provides_extra),
                &quoted(&form.provides_extra),
            ));
        }
        Ok(())
    }
}

fn sorted(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut items: Vec<String> = items.collect();
    items.sort();
    items
}

/// A requirement as pep508 prints it (normalised name, spacing and markers); as written when
/// it does not parse, so that it can only equal itself.
fn canonical_requirement(requirement: &str) -> String {
    parse_requirement(requirement).map_or_else(|_| requirement.trim().to_owned(), |r| r.to_string())
}

/// PEP 508's grammar is ASCII (names, versions, markers' quoted strings). pep508_rs 0.9
/// panics on some non-ASCII after a marker's quoted string (found by fuzzing:
/// `r;python_version>="9"\u{fffd}`), so such requirements never reach it; and on some names
/// ending in `-` (also found by fuzzing), so a panic inside it is a parse error too.
fn parse_requirement(
    requirement: &str,
) -> Result<pep508_rs::Requirement<pep508_rs::VerbatimUrl>, String> {
    if !requirement.is_ascii() {
        return Err("PEP 508 requirements are ASCII only".to_owned());
    }
    // `t-[` and `r[e.` made pep508_rs panic: the name and the extras (what comes before a
    // version, marker or URL) must start and end alphanumeric before it sees them.
    let head_len = requirement
        .find([';', '@', '<', '>', '=', '!', '~', '('])
        .unwrap_or(requirement.len());
    for identifier in requirement[..head_len]
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .filter(|id| !id.is_empty())
    {
        if identifier.starts_with(['.', '_', '-']) || identifier.ends_with(['.', '_', '-']) {
            return Err(format!(
                "Names and extras must start and end with a letter or digit: '{identifier}'"
            ));
        }
    }
    std::panic::catch_unwind(|| {
        pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(requirement)
    })
    .map_err(|_| "not a PEP 508 requirement".to_owned())?
    .map_err(|e| e.message.to_string())
}

/// A specifier set in a canonical order and spelling.
fn canonical_specifiers(spec: &str) -> String {
    match version::parse_specifiers(spec) {
        Ok(parsed) => sorted(parsed.into_iter().map(|s| s.to_string())).join(","),
        Err(_) => spec.trim().to_owned(),
    }
}

fn quoted<S: AsRef<str>>(values: &[S]) -> String {
    if values.is_empty() {
        return "none".to_owned();
    }
    values
        .iter()
        .map(|v| format!("'{}'", v.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keeps a message readable whatever a file holds.
fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    if text.chars().count() <= MAX {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(MAX).collect();
    short.push_str("...");
    short
}

fn check_content_type(ct: &str) -> Result<(), String> {
    let mut parts = ct.split(';').map(str::trim);
    let mime = parts.next().unwrap_or_default().to_ascii_lowercase();
    if !matches!(mime.as_str(), "text/plain" | "text/x-rst" | "text/markdown") {
        return Err(invalid(
            ct,
            "Description-Content-Type",
            "Use a valid content type: text/plain, text/x-rst or text/markdown.",
        ));
    }
    for param in parts.filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let ok = match key.trim().to_ascii_lowercase().as_str() {
            "charset" => value.trim().eq_ignore_ascii_case("utf-8"),
            "variant" => mime == "text/markdown" && matches!(value.trim(), "GFM" | "CommonMark"),
            _ => false,
        };
        if !ok {
            return Err(invalid(
                ct,
                "Description-Content-Type",
                "Use a valid charset (UTF-8) and, for Markdown, variant (GFM or CommonMark).",
            ));
        }
    }
    Ok(())
}

fn check_url(url: &str, field: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid(url, field, "Use a valid http or https URL."))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.chars().any(char::is_whitespace) {
        return Err(invalid(url, field, "Use a valid http or https URL."));
    }
    Ok(())
}

/// An address list such as `Jane <jane@example.org>, joe@example.org`.
fn check_emails(list: &str, field: &str) -> Result<(), String> {
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let address = match (entry.rfind('<'), entry.strip_suffix('>')) {
            (Some(start), Some(inner)) => &inner[start + 1..],
            _ => entry,
        };
        let valid = address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !address
                    .chars()
                    .any(|c| c.is_whitespace() || c == '<' || c == '>')
        });
        if !valid {
            return Err(invalid(entry, field, "Use a valid email address."));
        }
    }
    Ok(())
}

fn check_requirement(requirement: &str) -> Result<(), String> {
    let parsed = parse_requirement(requirement).map_err(|e| {
        invalid(
            requirement,
            "Requires-Dist",
            &format!("Use a valid PEP 508 requirement: {e}."),
        )
    })?;
    if matches!(parsed.version_or_url, Some(pep508_rs::VersionOrUrl::Url(_))) {
        return Err(format!(
            "Can't have direct dependency: {requirement}. {SPEC_LINK}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fuzz target `metadata`): pep508_rs panicked on this requirement, from the
    /// upload form or from the file.
    #[test]
    fn a_requirement_that_crashed_pep508_is_refused() {
        let requirement = "r;python_version>=\"9\"\u{fffd}\u{fffd}";
        let fields = form(&[("metadata_version", "2.4"), ("requires_dist", requirement)]);
        let err = Metadata::from_form(&Form::new(&fields)).expect_err("refused");
        assert!(err.contains("ASCII only"), "{err}");
        let file = FileMetadata::parse(
            b"Metadata-Version: 2.4\nName:g\nVersion: 101\nRequires-Dist:r;python_version>=\"9\"\xab\xab",
        );
        assert_eq!(
            canonical_requirement(&file.requires_dist[0]),
            file.requires_dist[0]
        );
        // The second crash (a name ending in '-' right before '['): refused, not a panic.
        let fields = form(&[("metadata_version", "2.4"), ("requires_dist", "t-[")]);
        let err = Metadata::from_form(&Form::new(&fields)).expect_err("refused");
        assert!(
            err.contains("must start and end with a letter or digit: 't-'"),
            "{err}"
        );
        assert_eq!(canonical_requirement("t-["), "t-[");
        assert!(check_requirement("t-[x] >= 1").is_err());
        assert!(check_requirement("t-x[y]>=1").is_ok());
        // The third (an extra ending in '.').
        assert!(check_requirement("requests[socre.").is_err());
        assert_eq!(canonical_requirement("requests[socre."), "requests[socre.");
        assert!(check_requirement("requests[socks,a.b] >= 2.0; python_version >= '3.8'").is_ok());
    }

    fn form(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut fields = vec![
            ("metadata_version".to_owned(), "2.1".to_owned()),
            ("name".to_owned(), "Sample_Project".to_owned()),
            ("version".to_owned(), "1.0.0".to_owned()),
        ];
        for (k, v) in extra {
            let base = ["metadata_version", "name", "version"].contains(k);
            if let Some(slot) = fields.iter_mut().find(|(key, _)| base && key == k) {
                slot.1 = (*v).to_owned();
            } else {
                fields.push(((*k).to_owned(), (*v).to_owned()));
            }
        }
        fields
    }

    fn check(extra: &[(&str, &str)]) -> Result<Metadata, String> {
        Metadata::from_form(&Form::new(&form(extra)))
    }

    #[test]
    fn accepts_a_full_form() {
        let meta = check(&[
            ("summary", "A sample"),
            (
                "author_email",
                "Jane Doe <jane@example.org>, joe@example.org",
            ),
            ("classifiers", "Programming Language :: Python :: 3"),
            ("requires_dist", "requests>=2; python_version >= '3.8'"),
            ("requires_dist", "rich[jupyter]"),
            ("requires_python", ">=3.8"),
            ("project_urls", "Homepage, https://example.org"),
            (
                "description_content_type",
                "text/markdown; charset=UTF-8; variant=GFM",
            ),
            ("license", "UNKNOWN"),
            ("keywords", ""),
        ])
        .expect("valid");
        assert_eq!(meta.name, "Sample_Project");
        assert_eq!(meta.requires_dist.len(), 2);
        assert_eq!(meta.license, None, "UNKNOWN is dropped");
        assert_eq!(meta.keywords, None, "empty is dropped");
    }

    #[test]
    fn refuses_bad_fields_with_clear_messages() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("metadata_version", "3.0")],
                "is an invalid value for Metadata-Version",
            ),
            (
                &[("metadata_version", "2.0")],
                "is an invalid value for Metadata-Version",
            ),
            (&[("name", "-bad")], "is an invalid value for Name"),
            (&[("version", "one")], "is an invalid value for Version"),
            (
                &[("version", "1.0+local")],
                "The use of local versions in '1.0+local' is not allowed.",
            ),
            (
                &[("summary", &"x".repeat(513))],
                "Use 512 characters or less",
            ),
            (
                &[("author_email", "not an email")],
                "Use a valid email address",
            ),
            (
                &[("classifiers", "Made Up :: Classifier")],
                "is not a valid classifier",
            ),
            (
                &[("classifiers", "Framework :: Django CMS :: 4.2")],
                "has been deprecated",
            ),
            (
                &[("home_page", "javascript:alert(1)")],
                "Use a valid http or https URL",
            ),
            (
                &[(
                    "project_urls",
                    &format!("{}, https://x.org", "L".repeat(33)),
                )],
                "32 characters",
            ),
            (
                &[("requires_dist", "foo @ https://example.org/foo.whl")],
                "Can't have direct dependency",
            ),
            (
                &[("requires_dist", "foo >>= 1")],
                "Use a valid PEP 508 requirement",
            ),
            (&[("requires_python", ">=3.8,<<4")], "Requires-Python"),
            (
                &[("license_file", "LICENSE")],
                "license-file introduced in metadata version 2.4, not 2.1",
            ),
            (
                &[
                    ("metadata_version", "2.4"),
                    ("license", "MIT"),
                    ("license_expression", "MIT"),
                ],
                "Only License-Expression should be present",
            ),
            (
                &[("metadata_version", "2.2"), ("dynamic", "Version")],
                "Dynamic",
            ),
            (
                &[("description_content_type", "text/html")],
                "Description-Content-Type",
            ),
        ];
        for (extra, expected) in cases {
            let err = check(extra).expect_err(expected);
            assert!(err.contains(expected), "{extra:?}: {err}");
        }
    }

    #[test]
    fn reads_file_metadata_headers() {
        let file = FileMetadata::parse(
            b"Metadata-Version: 2.2\nName: Sample_Project\nVersion: 1.0.0\nRequires-Dist: requests>=2\nRequires-Dist: rich; extra == 'fancy'\nrequires-python: >=3.8\nProvides-Extra: Fancy\nSummary: UNKNOWN\nDescription: line one\n        line two\n\nRequires-Dist: from-the-body\n",
        );
        assert_eq!(file.name.as_deref(), Some("Sample_Project"));
        assert_eq!(
            file.requires_dist,
            ["requests>=2", "rich; extra == 'fancy'"]
        );
        assert_eq!(file.requires_python.as_deref(), Some(">=3.8"));
        assert!(file.is_at_least(2, 2) && !file.is_at_least(2, 3));
        assert!(!FileMetadata::parse(b"Metadata-Version: 2.1\n").is_at_least(2, 2));
        assert!(!FileMetadata::parse(b"Name: x\n").is_at_least(1, 0));
    }

    #[test]
    fn file_metadata_must_match_the_form() {
        let form = check(&[
            ("requires_dist", "requests >= 2"),
            ("requires_dist", "rich ; extra == \"fancy\""),
            ("requires_python", ">=3.8, <4"),
            ("provides_extra", "fancy"),
        ])
        .expect("valid form");
        let base = "Metadata-Version: 2.1\nName: sample-project\nVersion: 1.0\n";
        let same = format!(
            "{base}Requires-Dist: rich; extra == 'fancy'\nRequires-Dist: Requests>=2\nRequires-Python: <4,>=3.8\nProvides-Extra: Fancy\n"
        );
        FileMetadata::parse(same.as_bytes())
            .check_matches(&form, "METADATA")
            .expect("the same metadata, written differently");
        for (file, field) in [
            (same.replace("sample-project", "other"), "Name"),
            (same.replace("Version: 1.0", "Version: 1.1"), "Version"),
            (
                same.replace("Requires-Dist: Requests>=2", "Requires-Dist: evil-package"),
                "Requires-Dist",
            ),
            (
                same.replace("Requires-Dist: Requests>=2\n", ""),
                "Requires-Dist",
            ),
            (format!("{same}Requires-Dist: extra-dep\n"), "Requires-Dist"),
            (same.replace("<4,>=3.8", ">=3.7"), "Requires-Python"),
            (
                same.replace("Requires-Python: <4,>=3.8\n", ""),
                "Requires-Python",
            ),
            (
                same.replace("Provides-Extra: Fancy\n", ""),
                "Provides-Extra",
            ),
            (base.replace("Name: sample-project\n", ""), "Name"),
        ] {
            let err = FileMetadata::parse(file.as_bytes())
                .check_matches(&form, "METADATA")
                .expect_err(field);
            assert!(
                err.starts_with(&format!(
                    "{field} in the distribution's METADATA does not match the upload form"
                )),
                "{field}: {err}"
            );
        }
        let err = FileMetadata::parse(
            same.replace("Requires-Dist: Requests>=2", "Requires-Dist: evil-package")
                .as_bytes(),
        )
        .check_matches(&form, "METADATA")
        .unwrap_err();
        assert!(
            err.contains("'evil-package'") && err.contains("'requests >= 2'"),
            "{err}"
        );
    }

    #[test]
    fn reports_metadata_version_before_name_before_version() {
        let err = check(&[("metadata_version", "9"), ("name", "-"), ("version", "x")]).unwrap_err();
        assert!(err.contains("Metadata-Version"));
        let err = check(&[("name", "-"), ("version", "x")]).unwrap_err();
        assert!(err.contains("for Name"));
    }
}
