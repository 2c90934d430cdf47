//! Project descriptions as HTML: Markdown rendered (CommonMark with tables and strikethrough)
//! and sanitised by ammonia; other formats (reStructuredText, plain text) shown as escaped
//! preformatted text, since no Rust reStructuredText renderer exists.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd, html};

/// README headings sit under the page's own `h1` and "Project description" `h2`.
fn demote(level: HeadingLevel) -> HeadingLevel {
    match level {
        HeadingLevel::H1 => HeadingLevel::H3,
        HeadingLevel::H2 => HeadingLevel::H4,
        HeadingLevel::H3 => HeadingLevel::H5,
        _ => HeadingLevel::H6,
    }
}

/// Safe HTML for a description with its `Description-Content-Type`, for a page of the site
/// at `base_url`.
pub fn render(description: &str, content_type: Option<&str>, base_url: &str) -> String {
    let is_markdown = content_type
        .map(|ct| ct.trim().to_ascii_lowercase())
        .is_some_and(|ct| ct.starts_with("text/markdown"));
    if is_markdown {
        let mut options = Options::empty();
        options.insert(Options::ENABLE_TABLES);
        options.insert(Options::ENABLE_STRIKETHROUGH);
        let mut unsafe_html = String::with_capacity(description.len() * 3 / 2);
        let events = Parser::new_ext(description, options).map(|event| match event {
            Event::Start(Tag::Heading {
                level,
                id,
                classes,
                attrs,
            }) => Event::Start(Tag::Heading {
                level: demote(level),
                id,
                classes,
                attrs,
            }),
            Event::End(TagEnd::Heading(level)) => Event::End(TagEnd::Heading(demote(level))),
            other => other,
        });
        html::push_html(&mut unsafe_html, events);
        let site = url::Url::parse(base_url).ok();
        let clean = ammonia::Builder::default()
            .link_rel(Some("nofollow noopener noreferrer"))
            .attribute_filter(move |_element, attribute, value| {
                let private = URL_ATTRIBUTES.contains(&attribute)
                    && site.as_ref().is_some_and(|site| {
                        urls_in(attribute, value).any(|url| reaches_private_pages(site, url))
                    });
                (!private).then_some(std::borrow::Cow::Borrowed(value))
            })
            .clean(&unsafe_html)
            .to_string();
        add_alt_text(&clean)
    } else {
        format!(
            "<pre class=\"description-text\">{}</pre>",
            html_escape(description)
        )
    }
}

/// Attributes that hold URLs a browser follows or fetches.
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "srcset",
    "xlink:href",
    "action",
    "formaction",
    "data",
    "poster",
    "ping",
    "cite",
    "longdesc",
];

/// The URLs in one attribute (`srcset` lists several, each with a size after it).
fn urls_in<'a>(attribute: &str, value: &'a str) -> Box<dyn Iterator<Item = &'a str> + 'a> {
    match attribute {
        "srcset" => Box::new(
            value
                .split(',')
                .map(|candidate| candidate.split_whitespace().next().unwrap_or_default()),
        ),
        "ping" => Box::new(value.split_whitespace()),
        _ => Box::new(std::iter::once(value)),
    }
}

/// Whether a README link or image would take a visitor's browser to this site's account,
/// management or admin pages (an image there is a GET with the visitor's cookies; a link
/// there is a page of ours dressed up by someone else). The URL is resolved the way a browser
/// does (dot segments, backslashes, `%2e`, tabs dropped) from the site's root, which reaches
/// every page a relative URL could reach from a project page and more; then the path is
/// percent-decoded and compared without case. A URL that does not parse is dropped too.
fn reaches_private_pages(site: &url::Url, value: &str) -> bool {
    let Ok(url) = site.join(value) else {
        return true;
    };
    if url.host_str() != site.host_str() || !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let path = percent_encoding::percent_decode_str(url.path())
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    let first = path
        .trim_start_matches(['/', '\\'])
        .split(['/', '\\', '?', '#', ';'])
        .next()
        .unwrap_or_default();
    matches!(first.trim(), "manage" | "account" | "admin")
}

/// One piece of serialised HTML: a start tag, an end tag, or text.
enum Piece<'a> {
    Start { name: &'a str, raw: &'a str },
    End { name: &'a str, raw: &'a str },
    Text(&'a str),
}

/// Splits ammonia's output into tags and text. It is serialised by html5ever: every attribute
/// value is in double quotes (a `"` inside is `&quot;`), `<` in text is `&lt;`, and comments
/// are gone, so a tag runs from `<` to the first `>` outside quotes.
fn pieces(html: &str) -> Vec<Piece<'_>> {
    let bytes = html.as_bytes();
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'<' {
            let end = html[at..].find('<').map_or(html.len(), |i| at + i);
            pieces.push(Piece::Text(&html[at..end]));
            at = end;
            continue;
        }
        let mut end = at + 1;
        let mut quoted = false;
        while end < bytes.len() && (quoted || bytes[end] != b'>') {
            if bytes[end] == b'"' {
                quoted = !quoted;
            }
            end += 1;
        }
        let end = (end + 1).min(bytes.len());
        let raw = &html[at..end];
        let inner = raw.trim_start_matches('<').trim_end_matches('>');
        let name_of = |text: &'_ str| -> usize {
            text.find(|c: char| c.is_ascii_whitespace() || c == '/')
                .unwrap_or(text.len())
        };
        if let Some(closing) = inner.strip_prefix('/') {
            pieces.push(Piece::End {
                name: &closing[..name_of(closing)],
                raw,
            });
        } else {
            pieces.push(Piece::Start {
                name: &inner[..name_of(inner)],
                raw,
            });
        }
        at = end;
    }
    pieces
}

/// The value of `name` in a serialised start tag, still HTML-escaped.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    loop {
        let start = rest.find(|c: char| c.is_ascii_whitespace())?;
        rest = rest[start..].trim_start();
        let (key, after) = rest.split_once('=').unwrap_or((rest, ""));
        let key = key.trim_end_matches('>');
        let value = after.strip_prefix('"').and_then(|v| v.split_once('"'));
        if key == name {
            return Some(value.map_or("", |(v, _)| v));
        }
        rest = value.map_or("", |(_, r)| r);
    }
}

/// An image's file name as alternative text: `ci-status.svg` becomes "ci status".
fn file_name_text(src: &str) -> Option<String> {
    let src = src.replace("&amp;", "&");
    if src.trim_start().to_ascii_lowercase().starts_with("data:") {
        return None;
    }
    let path = src.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').find(|s| !s.is_empty())?;
    let decoded = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
    let stem = match decoded.rfind('.') {
        Some(dot) if dot > 0 => &decoded[..dot],
        _ => &decoded[..],
    };
    let text = stem
        .replace(['-', '_', '+'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!text.is_empty() && !text.contains(':')).then_some(text)
}

/// Text as HTML (also inside a quoted attribute): `&`, `<`, `>` and both quotes escaped.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Every image gets alternative text (WCAG 1.1.1; axe `image-alt`): its own when it has some;
/// none (`alt=""`, `role="presentation"`) when it is a badge inside a link whose text already
/// names it; otherwise its file name; otherwise none.
fn add_alt_text(html: &str) -> String {
    let pieces = pieces(html);
    // For each piece, whether it sits inside a link that has text of its own.
    let mut in_named_link = vec![false; pieces.len()];
    let mut i = 0;
    while i < pieces.len() {
        if matches!(pieces[i], Piece::Start { name: "a", .. }) {
            let end = pieces[i..]
                .iter()
                .position(|p| matches!(p, Piece::End { name: "a", .. }))
                .map_or(pieces.len(), |n| i + n);
            let has_text = pieces[i..end].iter().any(
                |p| matches!(p, Piece::Text(t) if !t.replace("&nbsp;", " ").trim().is_empty()),
            );
            for flag in &mut in_named_link[i..end] {
                *flag = has_text;
            }
            i = end;
        }
        i += 1;
    }
    let mut out = String::with_capacity(html.len() + 64);
    for (piece, named_link) in pieces.iter().zip(in_named_link) {
        match piece {
            Piece::Start { name: "img", raw } => {
                let own = attribute(raw, "alt").is_some_and(|alt| !alt.trim().is_empty());
                let (body, close) = match raw.strip_suffix("/>") {
                    Some(body) => (body, "/>"),
                    None => (raw.strip_suffix('>').unwrap_or(raw), ">"),
                };
                if own {
                    out.push_str(raw);
                    continue;
                }
                // An empty `alt=""` of its own is replaced below, not repeated.
                let body = body.replace(" alt=\"\"", "");
                out.push_str(body.trim_end());
                match attribute(raw, "src").and_then(file_name_text) {
                    Some(text) if !named_link => {
                        out.push_str(" alt=\"");
                        out.push_str(&html_escape(&text));
                        out.push('"');
                    }
                    _ => out.push_str(" alt=\"\" role=\"presentation\""),
                }
                out.push_str(close);
            }
            Piece::Start { raw, .. } | Piece::End { raw, .. } => out.push_str(raw),
            Piece::Text(text) => out.push_str(text),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "https://wharf.test";

    fn md(text: &str) -> String {
        render(text, Some("text/markdown"), SITE)
    }

    #[test]
    fn markdown_is_rendered_and_scripts_removed() {
        let html = render(
            "# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) **bold**",
            Some("text/markdown; charset=UTF-8"),
            SITE,
        );
        assert!(html.contains("<h3>Title</h3>"), "{html}");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("javascript:"));
    }

    #[test]
    fn other_formats_are_escaped_text() {
        let html = render("Title\n=====\n\n<b>x</b>", Some("text/x-rst"), SITE);
        assert!(html.starts_with("<pre"));
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(render("<i>", None, SITE).contains("&lt;i&gt;"));
    }

    #[test]
    fn links_and_images_to_private_pages_are_dropped() {
        let hostile = [
            "/manage/account/",
            "/manage/project/x/delete",
            "/account/logout/",
            "/admin/events/",
            "manage/",
            "../../manage/projects/",
            "../../../account/",
            "/./manage/",
            "/a/../manage/",
            "/%2e%2e/manage/",
            "/.%2E/account/",
            "/%6Danage/",
            "/MANAGE/",
            "//wharf.test/manage/",
            "https://wharf.test/manage/",
            "http://wharf.test/account/",
            "https://wharf.test:8443/manage/",
            "\\\\wharf.test\\manage",
            "/manage\\x",
            "/\\/wharf.test/manage",
            "/\tmanage/",
            " /manage",
            "/manage?x=1",
            "/manage%2Fx",
        ];
        for url in hostile {
            // (Markdown reads backslashes as escapes and encodes what is left, harmlessly.)
            if !url.contains('\\') && !url.starts_with(' ') {
                let link = md(&format!("[a]({url})"));
                assert!(!link.contains("href"), "{url}: {link}");
                let image = md(&format!("![pic]({url})"));
                assert!(!image.contains("src"), "{url}: {image}");
            }
            let raw = md(&format!(
                "<a href=\"{url}\">a</a> <img alt=\"p\" src=\"{url}\">"
            ));
            assert!(
                !raw.contains("href") && !raw.contains("src"),
                "{url}: {raw}"
            );
        }
        let srcset = md("<img alt=\"p\" srcset=\"/x.png 1x, /manage/ 2x\">");
        assert!(!srcset.contains("manage"), "{srcset}");
    }

    #[test]
    fn other_links_and_images_stay() {
        for url in [
            "/project/demo/",
            "https://example.org/manage/",
            "https://github.com/o/r/blob/main/account/README.md",
            "/projects/manage",
            "docs/usage.md",
            "#install",
            "/files/aa/bb/cc/demo.whl",
        ] {
            let link = md(&format!("[a]({url})"));
            assert!(link.contains("href="), "{url}: {link}");
            let image = md(&format!("![pic]({url})"));
            assert!(image.contains("src="), "{url}: {image}");
        }
    }

    #[test]
    fn every_image_has_alternative_text() {
        // Its own.
        let html = md("![The logo](https://example.org/logo.png)");
        assert!(html.contains("alt=\"The logo\""), "{html}");
        assert!(!html.contains("role="), "{html}");
        let html = md("<img src=\"x.png\" alt=\"Diagram &amp; key\">");
        assert_eq!(html.matches("alt=").count(), 1, "{html}");
        assert!(html.contains("alt=\"Diagram &amp; key\""), "{html}");
        // Else its file name.
        let html = md("<img src=\"https://example.org/img/ci-status_badge.svg?v=2\">");
        assert!(html.contains("alt=\"ci status badge\""), "{html}");
        let html = md("![](https://example.org/architecture.png)");
        assert_eq!(html.matches("alt=").count(), 1, "{html}");
        assert!(html.contains("alt=\"architecture\""), "{html}");
        let html = md("[<img src=\"https://img.example/pypi-version.svg\">](https://pypi.org/)");
        assert!(
            html.contains("alt=\"pypi version\""),
            "a badge alone names its link: {html}"
        );
        // Else nothing, marked as decoration: a badge beside the text of its link, or an
        // image without a file name.
        let html =
            md("[<img src=\"https://img.example/b.svg\"> Documentation](https://docs.example/)");
        assert!(html.contains("alt=\"\" role=\"presentation\""), "{html}");
        let html = md("<img src=\"data:image/png;base64,AAAA\">");
        assert!(html.contains("alt=\"\" role=\"presentation\""), "{html}");
        let html = md("<img>");
        assert!(
            html.contains("<img alt=\"\" role=\"presentation\">"),
            "{html}"
        );
        // Quotes and brackets in a file name cannot leave the attribute.
        let html = md("<img src=\"https://example.org/%22%3E%3Cscript%3E.png\">");
        assert!(!html.contains("<script"), "{html}");
        // Text around the images is untouched.
        let html = md("a <b>x</b> ![](i.png) `<img src=y>` &lt;img&gt;");
        assert!(html.contains("<code>&lt;img src=y&gt;</code>"), "{html}");
        assert!(html.contains("&lt;img&gt;"), "{html}");
        assert_eq!(html.matches("<img").count(), 1, "{html}");
    }
}
