//! The pages of a Simple repository API as an upstream index sends them: PEP 691 (JSON) and
//! PEP 503 (HTML) project pages and root pages, with the PEP 592 (yanked), PEP 629 (version),
//! PEP 658/714 (core metadata) and PEP 700 (versions, size, upload time) additions.
//!
//! The upstream is not trusted: a page over [`MAX_PAGE_BYTES`], an API version other than
//! 1.x, or a SHA-256 that is not 64 hex digits is refused with a message naming the cause.
//! HTML is read with html5ever's tokenizer (the content of `<script>`, `<style>` and the
//! other raw-text elements is text, as a browser reads it), never by string search.

use std::cell::RefCell;

use html5ever::TokenizerResult;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The largest page read: PyPI's largest project pages are a few MiB.
pub const MAX_PAGE_BYTES: usize = 20 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFormat {
    Json,
    Html,
}

/// From a Content-Type: `application/vnd.pypi.simple.v1+json` → Json;
/// `application/vnd.pypi.simple.v1+html`, `text/html` (any params) → Html;
/// `application/vnd.pypi.simple.latest+json/html` likewise; anything else (incl. v2) → None.
pub fn format_of(content_type: &str) -> Option<PageFormat> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/vnd.pypi.simple.v1+json" | "application/vnd.pypi.simple.latest+json" => {
            Some(PageFormat::Json)
        }
        "application/vnd.pypi.simple.v1+html"
        | "application/vnd.pypi.simple.latest+html"
        | "text/html" => Some(PageFormat::Html),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProjectPage {
    pub files: Vec<PageFile>,
    /// PEP 700 `versions` (JSON only), as given.
    pub versions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageFile {
    pub filename: String,
    /// The URL as the page gives it, fragment removed (may be relative to the page).
    pub url: String,
    /// Lowercase hex SHA-256 (from `hashes.sha256` or the `#sha256=` fragment); None when absent.
    pub sha256: Option<String>,
    pub requires_python: Option<String>,
    /// None: not yanked; Some(""): yanked without a reason; Some(reason).
    pub yanked: Option<String>,
    /// SHA-256 of the PEP 658/714 metadata file (`core-metadata` / `dist-info-metadata` JSON
    /// objects, `data-core-metadata` / `data-dist-info-metadata="sha256=…"`); None when the
    /// page offers none or offers it without a sha256.
    pub metadata_sha256: Option<String>,
    /// PEP 700 `size` (JSON only).
    pub size: Option<u64>,
    /// PEP 700 `upload-time` as unix microseconds (RFC 3339 parsed).
    pub upload_time_micros: Option<i64>,
}

/// Why a page was refused: a message a person can act on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PageError(pub String);

fn refuse<T>(message: impl Into<String>) -> Result<T, PageError> {
    Err(PageError(message.into()))
}

/// The files (and PEP 700 versions) of a project page (`/simple/<project>/`).
pub fn parse_project(format: PageFormat, body: &[u8]) -> Result<ProjectPage, PageError> {
    check_size(body)?;
    match format {
        PageFormat::Json => project_from_json(json_text(body)?),
        PageFormat::Html => project_from_html(&tokenize(body)),
    }
}

/// Names listed by a root page (`/simple/`): JSON `projects[].name`, HTML anchor texts.
pub fn parse_root(format: PageFormat, body: &[u8]) -> Result<Vec<String>, PageError> {
    check_size(body)?;
    match format {
        PageFormat::Json => {
            let text = json_text(body)?;
            check_json_version(text)?;
            let Object(root): Object<JsonRoot> = from_json(text)?;
            root.projects
                .into_iter()
                .map(|p| match p.0.name {
                    Some(name) if !name.trim().is_empty() => Ok(name),
                    _ => refuse("a project entry has no name"),
                })
                .collect()
        }
        PageFormat::Html => {
            let page = tokenize(body);
            check_version(&page.repository_versions)?;
            page.anchors
                .into_iter()
                .map(|a| {
                    let name = a.text.trim();
                    if name.is_empty() {
                        refuse(format!("the anchor to {:?} has no project name", a.href))
                    } else {
                        Ok(name.to_owned())
                    }
                })
                .collect()
        }
    }
}

/// The page as PEP 691 JSON (API version 1.1), read back by [`parse_project`] as the same page.
pub fn to_json(page: &ProjectPage) -> Vec<u8> {
    let files: Vec<Value> = page
        .files
        .iter()
        .map(|f| {
            let hashes = match &f.sha256 {
                Some(sha256) => json!({"sha256": sha256}),
                None => json!({}),
            };
            let core_metadata = match &f.metadata_sha256 {
                Some(sha256) => json!({"sha256": sha256}),
                None => json!(false),
            };
            let yanked = match f.yanked.as_deref() {
                None => json!(false),
                Some("") => json!(true),
                Some(reason) => json!(reason),
            };
            json!({
                "filename": f.filename,
                "url": f.url,
                "hashes": hashes,
                "requires-python": f.requires_python,
                "yanked": yanked,
                "core-metadata": core_metadata,
                "size": f.size,
                "upload-time": f.upload_time_micros.and_then(rfc3339_micros),
            })
        })
        .collect();
    let page = json!({
        "meta": {"api-version": "1.1"},
        "files": files,
        "versions": page.versions,
    });
    serde_json::to_vec(&page).unwrap_or_default()
}

fn check_size(body: &[u8]) -> Result<(), PageError> {
    if body.len() > MAX_PAGE_BYTES {
        return refuse(format!(
            "the page is larger than {} MiB",
            MAX_PAGE_BYTES / (1024 * 1024)
        ));
    }
    Ok(())
}

/// PEP 629: major version 1 is read, whatever its minor version. A page that states none is 1.0.
fn check_version<S: AsRef<str>>(stated: &[S]) -> Result<(), PageError> {
    for version in stated {
        let version = version.as_ref().trim();
        let major = version.split('.').next().unwrap_or_default();
        if major.parse::<u64>() != Ok(1) {
            return refuse(format!(
                "the page's api-version {version} is not supported (1.x is)"
            ));
        }
    }
    Ok(())
}

fn check_sha256(value: &str, what: &str, filename: &str) -> Result<String, PageError> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        refuse(format!("the {what} of {filename} is not 64 hex digits"))
    }
}

/// `href` without its fragment, and the fragment.
fn split_fragment(href: &str) -> (&str, Option<&str>) {
    match href.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (href, None),
    }
}

// ---- JSON (PEP 691) ----

fn json_text(body: &[u8]) -> Result<&str, PageError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        PageError(format!(
            "the page is not PEP 691 JSON: it is not UTF-8 ({e})"
        ))
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

fn from_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, PageError> {
    serde_json::from_str(text).map_err(|e| PageError(format!("the page is not PEP 691 JSON: {e}")))
}

/// The version is read first, so that a page of another major version is refused as such
/// rather than for its shape.
fn check_json_version(text: &str) -> Result<(), PageError> {
    let Object(head): Object<JsonHead> = from_json(text)?;
    let stated = head.meta.and_then(|m| m.0.api_version);
    check_version(stated.as_slice())
}

/// A `T` read from a JSON object only: serde's derived structs also accept an array of their
/// fields in order, which no PEP 691 page is.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Only<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Only<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Only(std::marker::PhantomData))
            .map(Object)
    }
}

#[derive(Deserialize)]
struct JsonHead {
    meta: Option<Object<JsonMeta>>,
}

#[derive(Deserialize)]
struct JsonMeta {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

#[derive(Deserialize)]
struct JsonRoot {
    projects: Vec<Object<JsonRootProject>>,
}

#[derive(Deserialize)]
struct JsonRootProject {
    name: Option<String>,
}

#[derive(Deserialize)]
struct JsonProject {
    files: Vec<Object<JsonFile>>,
    versions: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: Option<String>,
    url: Option<String>,
    hashes: Option<Map<String, Value>>,
    #[serde(rename = "requires-python")]
    requires_python: Option<String>,
    yanked: Option<Value>,
    #[serde(rename = "core-metadata")]
    core_metadata: Option<Value>,
    #[serde(rename = "dist-info-metadata")]
    dist_info_metadata: Option<Value>,
    /// The key PyPI wrote for PEP 658 before PEP 714 (and still writes).
    #[serde(rename = "data-dist-info-metadata")]
    data_dist_info_metadata: Option<Value>,
    size: Option<u64>,
    #[serde(rename = "upload-time")]
    upload_time: Option<String>,
}

fn project_from_json(text: &str) -> Result<ProjectPage, PageError> {
    check_json_version(text)?;
    let Object(page): Object<JsonProject> = from_json(text)?;
    let files = page
        .files
        .into_iter()
        .map(|f| file_from_json(f.0))
        .collect::<Result<_, _>>()?;
    Ok(ProjectPage {
        files,
        versions: page.versions.unwrap_or_default(),
    })
}

fn file_from_json(file: JsonFile) -> Result<PageFile, PageError> {
    let filename = match file.filename {
        Some(name) if !name.trim().is_empty() => name,
        _ => return refuse("a file entry has no filename"),
    };
    let Some(url) = file.url else {
        return refuse(format!("the file entry of {filename} has no url"));
    };
    let sha256 = match file.hashes.as_ref().and_then(|h| h.get("sha256")) {
        None | Some(Value::Null) => None,
        Some(Value::String(hex)) => Some(check_sha256(hex, "sha256", &filename)?),
        Some(_) => return refuse(format!("the sha256 of {filename} is not 64 hex digits")),
    };
    let yanked = match file.yanked {
        None | Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(String::new()),
        Some(Value::String(reason)) => Some(reason),
        Some(_) => {
            return refuse(format!(
                "the yanked value of {filename} is neither a boolean nor a string"
            ));
        }
    };
    let metadata = file
        .core_metadata
        .or(file.dist_info_metadata)
        .or(file.data_dist_info_metadata);
    let metadata_sha256 = match metadata {
        None | Some(Value::Bool(_)) => None,
        Some(Value::Object(hashes)) => match hashes.get("sha256") {
            None | Some(Value::Null) => None,
            Some(Value::String(hex)) => Some(check_sha256(hex, "core metadata sha256", &filename)?),
            Some(_) => {
                return refuse(format!(
                    "the core metadata sha256 of {filename} is not 64 hex digits"
                ));
            }
        },
        Some(_) => {
            return refuse(format!(
                "the core-metadata of {filename} is neither a boolean nor a table of hashes"
            ));
        }
    };
    let upload_time_micros = match &file.upload_time {
        None => None,
        Some(text) => Some(parse_upload_time(text).ok_or_else(|| {
            PageError(format!(
                "the upload-time of {filename} is not an RFC 3339 time between the years 0 and 9999: {text:?}"
            ))
        })?),
    };
    Ok(PageFile {
        url: split_fragment(&url).0.to_owned(),
        filename,
        sha256,
        requires_python: file.requires_python,
        yanked,
        metadata_sha256,
        size: file.size,
        upload_time_micros,
    })
}

/// Unix microseconds of an RFC 3339 time whose UTC year is 0 to 9999 (so that it can be
/// written back as RFC 3339 in UTC).
fn parse_upload_time(text: &str) -> Option<i64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let nanos = at.unix_timestamp_nanos();
    let utc = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    if !(0..=9999).contains(&utc.year()) {
        return None;
    }
    i64::try_from(nanos.div_euclid(1000)).ok()
}

/// `2024-01-17T16:53:12.345678Z`, as PyPI writes `upload-time`.
fn rfc3339_micros(micros: i64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    ))
}

// ---- HTML (PEP 503) ----

/// An `<a>` with an `href`: its attributes (entities decoded) and its text.
#[derive(Debug, Default)]
struct Anchor {
    href: String,
    text: String,
    requires_python: Option<String>,
    yanked: Option<String>,
    core_metadata: Option<String>,
    dist_info_metadata: Option<String>,
}

#[derive(Debug, Default)]
struct HtmlPage {
    anchors: Vec<Anchor>,
    /// The `content` of every `<meta name="pypi:repository-version">`.
    repository_versions: Vec<String>,
    /// Inside an `<a>` with an `href` (the last of `anchors`).
    in_anchor: bool,
    /// Inside a raw-text element (`<script>`, `<style>`, `<title>`…): its text is not markup
    /// and not part of an anchor's text.
    in_raw_text: bool,
}

impl HtmlPage {
    fn tag(&mut self, tag: Tag) -> TokenSinkResult<()> {
        if tag.kind == TagKind::EndTag {
            // In a raw-text element the tokenizer emits no end tag but the element's own.
            self.in_raw_text = false;
            if &*tag.name == "a" {
                self.in_anchor = false;
            }
            return TokenSinkResult::Continue;
        }
        let attribute = |name: &str| {
            tag.attrs
                .iter()
                .find(|a| &*a.name.local == name)
                .map(|a| a.value.to_string())
        };
        // The elements whose content a browser's tree builder reads as text.
        let raw = match &*tag.name {
            "a" => {
                // An `<a>` ends the anchor before it, as in a browser.
                self.in_anchor = false;
                if let Some(href) = attribute("href") {
                    self.anchors.push(Anchor {
                        href,
                        text: String::new(),
                        requires_python: attribute("data-requires-python"),
                        yanked: attribute("data-yanked"),
                        core_metadata: attribute("data-core-metadata"),
                        dist_info_metadata: attribute("data-dist-info-metadata"),
                    });
                    self.in_anchor = true;
                }
                None
            }
            "meta" => {
                let name = attribute("name").unwrap_or_default();
                if name.trim().eq_ignore_ascii_case("pypi:repository-version") {
                    self.repository_versions
                        .push(attribute("content").unwrap_or_default());
                }
                None
            }
            "script" => Some(TokenSinkResult::RawData(RawKind::ScriptData)),
            "style" | "xmp" | "iframe" | "noembed" | "noframes" => {
                Some(TokenSinkResult::RawData(RawKind::Rawtext))
            }
            "title" | "textarea" => Some(TokenSinkResult::RawData(RawKind::Rcdata)),
            "plaintext" => Some(TokenSinkResult::Plaintext),
            _ => None,
        };
        match raw {
            Some(result) => {
                self.in_raw_text = true;
                result
            }
            None => TokenSinkResult::Continue,
        }
    }

    fn text(&mut self, text: &str) {
        if self.in_anchor
            && !self.in_raw_text
            && let Some(anchor) = self.anchors.last_mut()
        {
            anchor.text.push_str(text);
        }
    }
}

#[derive(Default)]
struct Collector(RefCell<HtmlPage>);

impl TokenSink for Collector {
    type Handle = ();

    fn process_token(&self, token: Token, _line_number: u64) -> TokenSinkResult<()> {
        let mut page = self.0.borrow_mut();
        match token {
            Token::TagToken(tag) => page.tag(tag),
            Token::CharacterTokens(text) => {
                page.text(&text);
                TokenSinkResult::Continue
            }
            _ => TokenSinkResult::Continue,
        }
    }
}

/// The anchors and version of an HTML page, its bytes read as UTF-8 (invalid sequences
/// replaced).
fn tokenize(body: &[u8]) -> HtmlPage {
    let text = String::from_utf8_lossy(body);
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(&text));
    let tokenizer = Tokenizer::new(Collector::default(), TokenizerOpts::default());
    // The sink never asks to stop for a script, so one feed reads the whole input.
    while !matches!(tokenizer.feed(&input), TokenizerResult::Done) {}
    tokenizer.end();
    tokenizer.sink.0.take()
}

fn project_from_html(page: &HtmlPage) -> Result<ProjectPage, PageError> {
    check_version(&page.repository_versions)?;
    let files = page
        .anchors
        .iter()
        .map(file_from_html)
        .collect::<Result<_, _>>()?;
    Ok(ProjectPage {
        files,
        versions: Vec::new(),
    })
}

fn file_from_html(anchor: &Anchor) -> Result<PageFile, PageError> {
    let filename = anchor.text.trim();
    if filename.is_empty() {
        return refuse(format!(
            "a file entry has no filename (the anchor to {:?} has no text)",
            anchor.href
        ));
    }
    let (url, fragment) = split_fragment(anchor.href.trim());
    let sha256 = fragment
        .into_iter()
        .flat_map(|f| f.split('&'))
        .find_map(|part| part.strip_prefix("sha256="))
        .map(|hex| check_sha256(hex, "sha256", filename))
        .transpose()?;
    // PEP 714: `data-core-metadata`, and only when it is absent the older name.
    let metadata = anchor
        .core_metadata
        .as_deref()
        .or(anchor.dist_info_metadata.as_deref());
    let metadata_sha256 = metadata
        .and_then(|m| m.trim().strip_prefix("sha256="))
        .map(|hex| check_sha256(hex, "core metadata sha256", filename))
        .transpose()?;
    Ok(PageFile {
        filename: filename.to_owned(),
        url: url.to_owned(),
        sha256,
        requires_python: anchor.requires_python.clone(),
        yanked: anchor.yanked.clone(),
        metadata_sha256,
        size: None,
        upload_time_micros: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHL_SHA: &str = "559762a20c68ae8133e22aef9b6ecc42f0bdae8a79ba4669b6c01fcef4aad8d6";
    const SDIST_SHA: &str = "714772a9f82b2aeb4fa5f7092d00fe4ac4c9cdeb6800840b6ed39ea64c4d785a";
    const META_SHA: &str = "ea3bd73e2b506e00527232b3ed743c066da83a8e3066f62a71e75eb9b4aa1db6";
    /// 2024-01-17T16:53:12.345678Z
    const UPLOADED: i64 = 1_705_510_392_345_678;

    /// A project page as PyPI answers it (`Accept: application/vnd.pypi.simple.v1+json`).
    const PYPI_JSON: &str = r##"{"files":[{"core-metadata":{"sha256":"ea3bd73e2b506e00527232b3ed743c066da83a8e3066f62a71e75eb9b4aa1db6"},"data-dist-info-metadata":{"sha256":"ea3bd73e2b506e00527232b3ed743c066da83a8e3066f62a71e75eb9b4aa1db6"},"filename":"demo-1.0-py3-none-any.whl","hashes":{"blake2b_256":"5c8a1bc4a5a42ab2b8b0a0de5b4bb6e3d2a7b8a9c4d1e0f2a3b4c5d6e7f8091a","sha256":"559762a20c68ae8133e22aef9b6ecc42f0bdae8a79ba4669b6c01fcef4aad8d6"},"provenance":null,"requires-python":">=3.8","size":12345,"upload-time":"2024-01-17T16:53:12.345678Z","url":"https://files.pythonhosted.org/packages/55/97/62a20c68ae81/demo-1.0-py3-none-any.whl","yanked":false},{"core-metadata":false,"data-dist-info-metadata":false,"filename":"demo-1.0.tar.gz","hashes":{"sha256":"714772a9f82b2aeb4fa5f7092d00fe4ac4c9cdeb6800840b6ed39ea64c4d785a"},"provenance":null,"requires-python":">=3.8","size":2345,"upload-time":"2024-01-17T16:53:14.000000Z","url":"https://files.pythonhosted.org/packages/71/47/72a9f82b2aeb/demo-1.0.tar.gz","yanked":"broken build"}],"meta":{"_last-serial":21470539,"api-version":"1.3"},"name":"demo","project-status":{"status":"active"},"versions":["1.0"]}"##;

    /// The same page as PEP 503 HTML, with one more file, yanked without a reason.
    const PYPI_HTML: &str = r##"<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="1.3">
    <title>Links for demo</title>
  </head>
  <body>
    <h1>Links for demo</h1>
    <a href="https://files.pythonhosted.org/packages/55/97/62a20c68ae81/demo-1.0-py3-none-any.whl#sha256=559762A20C68AE8133E22AEF9B6ECC42F0BDAE8A79BA4669B6C01FCEF4AAD8D6" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256=ea3bd73e2b506e00527232b3ed743c066da83a8e3066f62a71e75eb9b4aa1db6" data-core-metadata="sha256=ea3bd73e2b506e00527232b3ed743c066da83a8e3066f62a71e75eb9b4aa1db6">demo-1.0-py3-none-any.whl</a><br />
    <a href="https://files.pythonhosted.org/packages/71/47/72a9f82b2aeb/demo-1.0.tar.gz#sha256=714772a9f82b2aeb4fa5f7092d00fe4ac4c9cdeb6800840b6ed39ea64c4d785a" data-requires-python="&gt;=3.8" data-yanked="broken build">demo-1.0.tar.gz</a><br />
    <a href="https://files.pythonhosted.org/packages/aa/bb/cc/demo-0.9.tar.gz" data-yanked="">demo-0.9.tar.gz</a><br />
  </body>
</html>
<!--SERIAL 21470539-->
"##;

    fn whl() -> PageFile {
        PageFile {
            filename: "demo-1.0-py3-none-any.whl".into(),
            url: "https://files.pythonhosted.org/packages/55/97/62a20c68ae81/demo-1.0-py3-none-any.whl"
                .into(),
            sha256: Some(WHL_SHA.into()),
            requires_python: Some(">=3.8".into()),
            yanked: None,
            metadata_sha256: Some(META_SHA.into()),
            size: Some(12345),
            upload_time_micros: Some(UPLOADED),
        }
    }

    fn sdist() -> PageFile {
        PageFile {
            filename: "demo-1.0.tar.gz".into(),
            url: "https://files.pythonhosted.org/packages/71/47/72a9f82b2aeb/demo-1.0.tar.gz"
                .into(),
            sha256: Some(SDIST_SHA.into()),
            requires_python: Some(">=3.8".into()),
            yanked: Some("broken build".into()),
            metadata_sha256: None,
            size: Some(2345),
            upload_time_micros: Some(1_705_510_394_000_000),
        }
    }

    fn json(body: &str) -> Result<ProjectPage, PageError> {
        parse_project(PageFormat::Json, body.as_bytes())
    }

    fn html(body: &str) -> Result<ProjectPage, PageError> {
        parse_project(PageFormat::Html, body.as_bytes())
    }

    fn html_files(body: &str) -> Vec<PageFile> {
        html(body).unwrap_or_else(|e| panic!("{body}: {e}")).files
    }

    fn filenames(body: &str) -> Vec<String> {
        html_files(body).into_iter().map(|f| f.filename).collect()
    }

    /// A JSON page of one file with these extra keys.
    fn one_file(extra: &str) -> String {
        format!(
            r#"{{"meta": {{"api-version": "1.1"}}, "files": [{{"filename": "demo-1.0.tar.gz", "url": "demo-1.0.tar.gz"{extra}}}]}}"#
        )
    }

    fn error(result: Result<impl std::fmt::Debug, PageError>) -> String {
        match result {
            Ok(page) => panic!("accepted: {page:?}"),
            Err(PageError(message)) => message,
        }
    }

    #[test]
    fn formats_from_content_types() {
        let cases = [
            (
                "application/vnd.pypi.simple.v1+json",
                Some(PageFormat::Json),
            ),
            (
                "application/vnd.pypi.simple.latest+json",
                Some(PageFormat::Json),
            ),
            (
                "Application/VND.PyPI.Simple.V1+JSON ; charset=utf-8",
                Some(PageFormat::Json),
            ),
            (
                "application/vnd.pypi.simple.v1+html",
                Some(PageFormat::Html),
            ),
            (
                "application/vnd.pypi.simple.latest+html; q=1",
                Some(PageFormat::Html),
            ),
            ("text/html", Some(PageFormat::Html)),
            ("text/html; charset=utf-8", Some(PageFormat::Html)),
            ("application/vnd.pypi.simple.v2+json", None),
            ("application/vnd.pypi.simple.v2+html", None),
            ("application/json", None),
            ("text/plain", None),
            ("", None),
        ];
        for (content_type, expected) in cases {
            assert_eq!(format_of(content_type), expected, "{content_type:?}");
        }
    }

    #[test]
    fn reads_a_pypi_json_page() {
        let page = json(PYPI_JSON).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            page,
            ProjectPage {
                files: vec![whl(), sdist()],
                versions: vec!["1.0".into()],
            }
        );
    }

    #[test]
    fn reads_the_same_page_as_pep_503_html() {
        let page = html(PYPI_HTML).unwrap_or_else(|e| panic!("{e}"));
        // HTML has neither sizes, upload times nor versions; the rest is the JSON page's.
        let without_pep_700 = |f: PageFile| PageFile {
            size: None,
            upload_time_micros: None,
            ..f
        };
        let old = PageFile {
            filename: "demo-0.9.tar.gz".into(),
            url: "https://files.pythonhosted.org/packages/aa/bb/cc/demo-0.9.tar.gz".into(),
            sha256: None,
            requires_python: None,
            yanked: Some(String::new()),
            metadata_sha256: None,
            size: None,
            upload_time_micros: None,
        };
        assert_eq!(
            page,
            ProjectPage {
                files: vec![without_pep_700(whl()), without_pep_700(sdist()), old],
                versions: vec![],
            }
        );
    }

    /// What crates/wharf/src/simple writes (project_json, project_html and the root pages).
    #[test]
    fn reads_wharfs_own_pages() {
        let project_json = format!(
            r#"{{"files":[{{"core-metadata":{{"sha256":"{META_SHA}"}},"data-dist-info-metadata":{{"sha256":"{META_SHA}"}},"filename":"demo-1.0-py3-none-any.whl","hashes":{{"sha256":"{WHL_SHA}"}},"provenance":null,"requires-python":null,"size":12345,"upload-time":"2024-01-17T16:53:12.345678Z","url":"../../files/a/demo-1.0-py3-none-any.whl","yanked":false}},{{"core-metadata":false,"data-dist-info-metadata":false,"filename":"demo-0.9.tar.gz","hashes":{{"sha256":"{SDIST_SHA}"}},"provenance":null,"requires-python":"<4,>=3.8","size":2345,"upload-time":"1970-01-01T00:00:00.000001Z","url":"../../files/b/demo-0.9.tar.gz","yanked":true}}],"meta":{{"_last-serial":7,"api-version":"1.4"}},"name":"demo","project-status":{{"status":"active"}},"versions":["0.9","1.0"]}}
"#
        );
        let project_html = format!(
            "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.4\">\n    \
             <meta name=\"pypi:project-status\" content=\"active\">\n    <title>Links for demo</title>\n  </head>\n  \
             <body>\n    <h1>Links for demo</h1>\n\
             \x20   <a href=\"../../files/a/demo-1.0-py3-none-any.whl#sha256={WHL_SHA}\" data-dist-info-metadata=\"sha256={META_SHA}\" data-core-metadata=\"sha256={META_SHA}\">demo-1.0-py3-none-any.whl</a><br />\n\
             \x20   <a href=\"../../files/b/demo-0.9.tar.gz#sha256={SDIST_SHA}\" data-requires-python=\"&lt;4,&gt;=3.8\" data-yanked=\"\">demo-0.9.tar.gz</a><br />\n\
             \x20 </body>\n</html>\n<!--SERIAL 7-->\n"
        );
        let files = |size: bool| {
            vec![
                PageFile {
                    filename: "demo-1.0-py3-none-any.whl".into(),
                    url: "../../files/a/demo-1.0-py3-none-any.whl".into(),
                    sha256: Some(WHL_SHA.into()),
                    requires_python: None,
                    yanked: None,
                    metadata_sha256: Some(META_SHA.into()),
                    size: size.then_some(12345),
                    upload_time_micros: size.then_some(UPLOADED),
                },
                PageFile {
                    filename: "demo-0.9.tar.gz".into(),
                    url: "../../files/b/demo-0.9.tar.gz".into(),
                    sha256: Some(SDIST_SHA.into()),
                    requires_python: Some("<4,>=3.8".into()),
                    yanked: Some(String::new()),
                    metadata_sha256: None,
                    size: size.then_some(2345),
                    upload_time_micros: size.then_some(1),
                },
            ]
        };
        assert_eq!(
            json(&project_json),
            Ok(ProjectPage {
                files: files(true),
                versions: vec!["0.9".into(), "1.0".into()],
            })
        );
        assert_eq!(
            html(&project_html),
            Ok(ProjectPage {
                files: files(false),
                versions: vec![],
            })
        );

        let root_json = r#"{"meta":{"_last-serial":7,"api-version":"1.4"},"projects":[{"_last-serial":3,"name":"Demo_Pkg"},{"_last-serial":7,"name":"other"}]}"#;
        let root_html = "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.4\">\n    \
             <title>Simple index</title>\n  </head>\n  <body>\n    <a href=\"demo-pkg/\">Demo_Pkg</a>\n    \
             <a href=\"a-b/\">A&amp;B</a>\n  </body>\n</html>\n";
        assert_eq!(
            parse_root(PageFormat::Json, root_json.as_bytes()),
            Ok(vec!["Demo_Pkg".to_owned(), "other".to_owned()])
        );
        assert_eq!(
            parse_root(PageFormat::Html, root_html.as_bytes()),
            Ok(vec!["Demo_Pkg".to_owned(), "A&B".to_owned()])
        );
    }

    /// Moved from wharf's import: the anchors of a PEP 503 page, any case, either quote.
    #[test]
    fn reads_pep_503_anchors() {
        let html = format!(
            "<html><body><a href=\"../../files/a/demo-1.0.tar.gz#sha256={}\" data-requires-python=\"&gt;=3.8\">demo-1.0.tar.gz</a>\n\
             <A HREF='x.whl'>x.whl</A></body></html>",
            SDIST_SHA.to_ascii_uppercase()
        );
        let files = html_files(&html);
        let found: Vec<_> = files
            .iter()
            .map(|f| {
                (
                    f.url.as_str(),
                    f.filename.as_str(),
                    f.sha256.as_deref(),
                    f.requires_python.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    "../../files/a/demo-1.0.tar.gz",
                    "demo-1.0.tar.gz",
                    Some(SDIST_SHA),
                    Some(">=3.8")
                ),
                ("x.whl", "x.whl", None, None),
            ]
        );
    }

    #[test]
    fn json_variants_of_yanked_metadata_and_times() {
        let file = |extra: &str| {
            json(&one_file(extra))
                .unwrap_or_else(|e| panic!("{extra}: {e}"))
                .files
                .remove(0)
        };
        assert_eq!(file(r#", "yanked": true"#).yanked, Some(String::new()));
        assert_eq!(file(r#", "yanked": false"#).yanked, None);
        assert_eq!(file(r#", "yanked": null"#).yanked, None);
        assert_eq!(file(r#", "yanked": "CVE""#).yanked, Some("CVE".into()));
        assert_eq!(file("").yanked, None);
        assert!(error(json(&one_file(r#", "yanked": 1"#))).contains("yanked"));

        // PEP 714's key, PEP 691's, and PyPI's: the first present wins.
        let meta = |extra: &str| file(extra).metadata_sha256;
        let upper = META_SHA.to_ascii_uppercase();
        assert_eq!(
            meta(&format!(r#", "core-metadata": {{"sha256": "{upper}"}}"#)),
            Some(META_SHA.into())
        );
        assert_eq!(
            meta(&format!(
                r#", "dist-info-metadata": {{"sha256": "{META_SHA}"}}"#
            )),
            Some(META_SHA.into())
        );
        assert_eq!(
            meta(&format!(
                r#", "data-dist-info-metadata": {{"sha256": "{META_SHA}"}}"#
            )),
            Some(META_SHA.into())
        );
        assert_eq!(
            meta(&format!(
                r#", "core-metadata": true, "data-dist-info-metadata": {{"sha256": "{META_SHA}"}}"#
            )),
            None
        );
        assert_eq!(meta(r#", "core-metadata": true"#), None);
        assert_eq!(meta(r#", "core-metadata": {"md5": "abc"}"#), None);
        assert_eq!(meta(r#", "core-metadata": false"#), None);
        assert_eq!(
            error(json(&one_file(r#", "core-metadata": {"sha256": "abc"}"#))),
            "the core metadata sha256 of demo-1.0.tar.gz is not 64 hex digits"
        );
        assert!(error(json(&one_file(r#", "core-metadata": "yes""#))).contains("core-metadata"));

        // Other algorithms are ignored, whatever they hold.
        let hashes = file(r#", "hashes": {"md5": "zz", "blake2b_256": 7}"#);
        assert_eq!(hashes.sha256, None);
        assert_eq!(
            file(&format!(
                r#", "hashes": {{"sha256": "{}"}}"#,
                WHL_SHA.to_ascii_uppercase()
            ))
            .sha256,
            Some(WHL_SHA.into())
        );
        // A fragment is not part of the URL.
        let fragment = r##"{"files": [{"filename": "a.whl", "url": "a.whl#sha256=x"}]}"##;
        assert_eq!(
            json(fragment).map(|p| p.files[0].url.clone()),
            Ok("a.whl".into())
        );

        let time = |t: &str| file(&format!(r#", "upload-time": "{t}""#)).upload_time_micros;
        assert_eq!(time("2024-01-17T16:53:12.345678Z"), Some(UPLOADED));
        assert_eq!(time("2024-01-17T17:53:12.345678+01:00"), Some(UPLOADED));
        assert_eq!(time("1969-12-31T23:59:59.999999Z"), Some(-1));
        assert_eq!(time("1970-01-01T00:00:00.0000019Z"), Some(1));
        for bad in [
            "yesterday",
            "2024-01-17",
            "2024-13-01T00:00:00Z",
            "9999-12-31T23:00:00-05:00",
        ] {
            let message = error(json(&one_file(&format!(r#", "upload-time": "{bad}""#))));
            assert!(
                message.starts_with("the upload-time of demo-1.0.tar.gz"),
                "{bad}: {message}"
            );
        }
        assert_eq!(file(r#", "size": 0"#).size, Some(0));
        assert!(
            error(json(&one_file(r#", "size": -1"#))).starts_with("the page is not PEP 691 JSON")
        );
    }

    #[test]
    fn html_variants_of_metadata_and_fragments() {
        let only = |attrs: &str| {
            let page =
                format!("<a href=\"a-1.0.tar.gz#sha256={SDIST_SHA}\" {attrs}>a-1.0.tar.gz</a>");
            html_files(&page).remove(0)
        };
        assert_eq!(
            only(&format!("data-dist-info-metadata=\"sha256={META_SHA}\"")).metadata_sha256,
            Some(META_SHA.into())
        );
        assert_eq!(
            only(&format!("data-core-metadata=\"sha256={META_SHA}\"")).metadata_sha256,
            Some(META_SHA.into())
        );
        // data-core-metadata wins, even without a hash.
        assert_eq!(
            only(&format!(
                "data-core-metadata=\"true\" data-dist-info-metadata=\"sha256={META_SHA}\""
            ))
            .metadata_sha256,
            None
        );
        assert_eq!(only("data-core-metadata=\"md5=abc\"").metadata_sha256, None);
        assert_eq!(only("data-core-metadata").metadata_sha256, None);
        assert_eq!(
            error(html(
                "<a href=\"a.whl\" data-core-metadata=\"sha256=12\">a.whl</a>"
            )),
            "the core metadata sha256 of a.whl is not 64 hex digits"
        );
        assert_eq!(only("data-yanked").yanked, Some(String::new()));
        assert_eq!(
            only("data-yanked='no &quot;reason&quot;'").yanked,
            Some("no \"reason\"".into())
        );
        assert_eq!(only("").yanked, None);
        // The first duplicate attribute counts, as in a browser.
        assert_eq!(
            only("data-requires-python=\"&gt;=3.9\" data-requires-python=\"&lt;3\"")
                .requires_python,
            Some(">=3.9".into())
        );

        let files = html_files(&format!(
            "<a href=\"x.whl?a=1&amp;b=2#md5=00&amp;sha256={WHL_SHA}\">x.whl</a>\
             <a href=\"y.whl#egg=y\">y.whl</a><a href=\"  z.whl  \">  z.whl\n</a>"
        ));
        let found: Vec<_> = files
            .iter()
            .map(|f| (f.filename.as_str(), f.url.as_str(), f.sha256.as_deref()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("x.whl", "x.whl?a=1&b=2", Some(WHL_SHA)),
                ("y.whl", "y.whl", None),
                ("z.whl", "z.whl", None)
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_json() {
        let malformed = error(json(r#"{"files": [{"filename": "a.whl", "url": "a.whl"}"#));
        assert!(
            malformed.starts_with("the page is not PEP 691 JSON: "),
            "{malformed}"
        );
        let array = error(json(r#"[{"filename": "a.whl", "url": "a.whl"}]"#));
        assert_eq!(
            array,
            "the page is not PEP 691 JSON: invalid type: sequence, expected a JSON object at line 1 column 0"
        );
        // Nor is a file entry an array of its fields in order.
        let positional = error(json(r#"{"files": [["a.whl", "a.whl"]]}"#));
        assert!(
            positional.contains("invalid type: sequence, expected a JSON object"),
            "{positional}"
        );
        let meta = error(json(r#"{"meta": ["2.0"], "files": []}"#));
        assert!(
            meta.contains("invalid type: sequence, expected a JSON object"),
            "{meta}"
        );
        let not_a_list = error(json(r#"{"files": {"filename": "a.whl"}}"#));
        assert!(
            not_a_list.starts_with("the page is not PEP 691 JSON: invalid type: map"),
            "{not_a_list}"
        );
        assert!(
            error(json(r#"{"meta": {"api-version": "1.0"}}"#)).contains("missing field `files`")
        );
        assert!(
            error(json(r#"{"files": [], "versions": [1]}"#))
                .starts_with("the page is not PEP 691 JSON")
        );
        assert!(error(json("")).starts_with("the page is not PEP 691 JSON"));
        assert_eq!(
            error(json(
                &one_file("").replace("\"filename\": \"demo-1.0.tar.gz\", ", "")
            )),
            "a file entry has no filename"
        );
        assert_eq!(
            error(json(r#"{"files": [{"filename": " ", "url": "a"}]}"#)),
            "a file entry has no filename"
        );
        assert_eq!(
            error(json(r#"{"files": [{"filename": "a.whl"}]}"#)),
            "the file entry of a.whl has no url"
        );
        // A byte order mark is allowed; nothing else before the object.
        assert_eq!(
            json("\u{feff}{\"files\": []}"),
            Ok(ProjectPage {
                files: vec![],
                versions: vec![]
            })
        );
        let root = error(parse_root(
            PageFormat::Json,
            br#"{"projects": [{"_last-serial": 1}]}"#,
        ));
        assert_eq!(root, "a project entry has no name");
        let root = error(parse_root(PageFormat::Json, br#"{"projects": "demo"}"#));
        assert!(root.starts_with("the page is not PEP 691 JSON"), "{root}");
    }

    #[test]
    fn refuses_hashes_that_are_not_sha256_hex() {
        let not_hex = "g".repeat(64);
        assert_eq!(
            error(json(&one_file(&format!(
                r#", "hashes": {{"sha256": "{not_hex}"}}"#
            )))),
            "the sha256 of demo-1.0.tar.gz is not 64 hex digits"
        );
        assert_eq!(
            error(json(&one_file(&format!(
                r#", "hashes": {{"sha256": "{WHL_SHA}0"}}"#
            )))),
            "the sha256 of demo-1.0.tar.gz is not 64 hex digits"
        );
        assert_eq!(
            error(json(&one_file(r#", "hashes": {"sha256": 12}"#))),
            "the sha256 of demo-1.0.tar.gz is not 64 hex digits"
        );
        assert_eq!(
            error(html(&format!(
                "<a href=\"a.whl#sha256={not_hex}\">a.whl</a>"
            ))),
            "the sha256 of a.whl is not 64 hex digits"
        );
        assert_eq!(
            error(html("<a href=\"a.whl#sha256=\">a.whl</a>")),
            "the sha256 of a.whl is not 64 hex digits"
        );
        // Non-ASCII "digits" of the right byte length are not hex either.
        let wide = "é".repeat(32);
        assert_eq!(
            error(html(&format!("<a href=\"a.whl#sha256={wide}\">a.whl</a>"))),
            "the sha256 of a.whl is not 64 hex digits"
        );
    }

    #[test]
    fn refuses_other_major_api_versions() {
        let v2 = r#"{"meta": {"api-version": "2.0"}, "files": {"new": "shape"}}"#;
        assert_eq!(
            error(json(v2)),
            "the page's api-version 2.0 is not supported (1.x is)"
        );
        assert_eq!(
            error(parse_root(
                PageFormat::Json,
                br#"{"meta": {"api-version": "2.0"}, "projects": []}"#
            )),
            "the page's api-version 2.0 is not supported (1.x is)"
        );
        assert_eq!(
            error(json(r#"{"meta": {"api-version": "one"}, "files": []}"#)),
            "the page's api-version one is not supported (1.x is)"
        );
        let v2_html = "<html><head><meta name=\"pypi:repository-version\" content=\"2.0\"></head><body><a href=\"a.whl\">a.whl</a></body></html>";
        assert_eq!(
            error(html(v2_html)),
            "the page's api-version 2.0 is not supported (1.x is)"
        );
        assert_eq!(
            error(parse_root(PageFormat::Html, v2_html.as_bytes())),
            "the page's api-version 2.0 is not supported (1.x is)"
        );
        // Any 1.x, and pages that state no version (PEP 629: 1.0).
        for ok in ["1.0", "1.4", "1.99", "1"] {
            assert!(
                json(&format!(
                    r#"{{"meta": {{"api-version": "{ok}"}}, "files": []}}"#
                ))
                .is_ok(),
                "{ok}"
            );
            let page = format!(
                "<meta name=\"pypi:repository-version\" content=\"{ok}\"><a href=\"a.whl\">a.whl</a>"
            );
            assert_eq!(filenames(&page), vec!["a.whl"], "{ok}");
        }
        assert!(json(r#"{"meta": {"_last-serial": 1}, "files": []}"#).is_ok());
        assert!(json(r#"{"files": []}"#).is_ok());
    }

    #[test]
    fn refuses_pages_over_20_mib() {
        let mut big = vec![b' '; MAX_PAGE_BYTES + 1];
        let expected = "the page is larger than 20 MiB";
        assert_eq!(error(parse_project(PageFormat::Json, &big)), expected);
        assert_eq!(error(parse_project(PageFormat::Html, &big)), expected);
        assert_eq!(error(parse_root(PageFormat::Json, &big)), expected);
        assert_eq!(error(parse_root(PageFormat::Html, &big)), expected);
        // One byte less is read.
        big.pop();
        assert_eq!(
            parse_project(PageFormat::Html, &big),
            Ok(ProjectPage {
                files: vec![],
                versions: vec![]
            })
        );
        let json_message = error(parse_project(PageFormat::Json, &big));
        assert!(
            json_message.starts_with("the page is not PEP 691 JSON"),
            "{json_message}"
        );
    }

    #[test]
    fn reads_html_as_a_browser_does() {
        // Unclosed tags: the next anchor ends the one before.
        assert_eq!(
            filenames(
                "<html><body><a href=\"a-1.0.tar.gz\">a-1.0.tar.gz<br><a href=\"b-1.0.tar.gz\">b-1.0.tar.gz<p>"
            ),
            vec!["a-1.0.tar.gz", "b-1.0.tar.gz"]
        );
        assert_eq!(filenames("<a href=\"a.whl\">a.whl"), vec!["a.whl"]);
        assert_eq!(filenames("<a href=\"a.whl\""), Vec::<String>::new());
        // An `<a>` without an href is no file, and its text joins no other.
        assert_eq!(
            filenames("<a name=\"top\">top</a><a href=\"a.whl\">a.whl</a><a id=x>more</a> tail"),
            vec!["a.whl"]
        );
        // Tags inside the anchor: their text is the anchor's.
        assert_eq!(
            filenames(
                "<a href=\"demo-1.0.tar.gz\"><span class=\"n\">demo</span>-<b>1.0</b><!-- c -->.tar.gz</a>"
            ),
            vec!["demo-1.0.tar.gz"]
        );
        // A script's, a style's, a title's, a textarea's content is text, not markup.
        let hidden = "<html><head><title><a href=\"t.whl\">t.whl</a></title>\
             <script>document.write('<a href=\"evil.whl\">evil.whl</a>');</script>\
             <style>a::after { content: '<a href=\"s.whl\">s.whl</a>' }</style></head><body>\
             <textarea><a href=\"ta.whl\">ta.whl</a></textarea>\
             <!-- <a href=\"hidden.whl\">hidden.whl</a> -->\
             <a href=\"real.whl\">real<script>'<a href=\"x\">'</script>.whl</a></body></html>";
        assert_eq!(filenames(hidden), vec!["real.whl"]);
        // A script that is never closed hides the rest of the page.
        assert_eq!(
            filenames("<a href=\"a.whl\">a.whl</a><script><a href=\"b.whl\">b.whl</a>"),
            vec!["a.whl"]
        );
        // Entities, named and numeric, in text and attributes.
        let files = html_files(
            "<a href=\"a&#x2b;b.whl\" data-requires-python=\"&gt;=3.8,&lt;4&#33;\">a&plus;b&#46;whl &amp; co</a>",
        );
        assert_eq!(files[0].filename, "a+b.whl & co");
        assert_eq!(files[0].url, "a+b.whl");
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8,<4!"));
        // An anchor without text names no file.
        assert_eq!(
            error(html("<a href=\"../\"><img src=\"up.png\"></a>")),
            "a file entry has no filename (the anchor to \"../\" has no text)"
        );
        assert_eq!(
            error(parse_root(PageFormat::Html, b"<a href=\"x/\"> </a>")),
            "the anchor to \"x/\" has no project name"
        );
    }

    #[test]
    fn reads_bytes_that_are_not_utf8() {
        let mut page = b"<a href=\"a.whl\">a\xff.whl</a><a href=\"b.whl\">b.whl</a>".to_vec();
        assert_eq!(
            filenames(&String::from_utf8_lossy(&page)),
            vec!["a\u{fffd}.whl", "b.whl"]
        );
        let files = parse_project(PageFormat::Html, &page).map(|p| p.files);
        assert_eq!(
            files.map(|f| f[0].filename.clone()),
            Ok("a\u{fffd}.whl".to_owned())
        );
        page = br#"{"files": [{"filename": "a\xff.whl", "url": "a.whl"}]}"#.to_vec();
        page[25] = 0xff;
        let message = error(parse_project(PageFormat::Json, &page));
        assert!(
            message.starts_with("the page is not PEP 691 JSON: it is not UTF-8"),
            "{message}"
        );
        assert!(error(parse_root(PageFormat::Json, b"\xfe\xff{}")).contains("not UTF-8"));
    }

    #[test]
    fn json_round_trips() {
        let page = json(PYPI_JSON).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json(&String::from_utf8_lossy(&to_json(&page))), Ok(page));
        let html_page = html(PYPI_HTML).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            json(&String::from_utf8_lossy(&to_json(&html_page))),
            Ok(html_page)
        );
        let written =
            String::from_utf8_lossy(&to_json(&json(PYPI_JSON).unwrap_or_else(|e| panic!("{e}"))))
                .into_owned();
        assert!(
            written.contains(r#""upload-time":"2024-01-17T16:53:12.345678Z""#),
            "{written}"
        );
        assert!(written.contains(r#""yanked":"broken build""#), "{written}");
    }

    /// No prefix of a real page, and no page with a byte changed, makes the parser panic; what
    /// it accepts has well-formed hashes.
    #[test]
    fn never_panics_on_cut_or_damaged_pages() {
        for page in [PYPI_JSON, PYPI_HTML] {
            let bytes = page.as_bytes();
            for end in 0..bytes.len() {
                for mut body in [bytes[..end].to_vec(), bytes.to_vec()] {
                    if body.len() == bytes.len() {
                        body[end] ^= 0x80;
                    }
                    for format in [PageFormat::Json, PageFormat::Html] {
                        if let Ok(page) = parse_project(format, &body) {
                            for f in &page.files {
                                for hex in [&f.sha256, &f.metadata_sha256].into_iter().flatten() {
                                    assert!(
                                        hex.len() == 64
                                            && hex.bytes().all(|b| b.is_ascii_digit()
                                                || (b'a'..=b'f').contains(&b))
                                    );
                                }
                            }
                        }
                        let _ = parse_root(format, &body);
                    }
                }
            }
        }
    }
}
