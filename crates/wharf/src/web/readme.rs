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

/// Safe HTML for a description with its `Description-Content-Type`.
pub fn render(description: &str, content_type: Option<&str>) -> String {
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
        ammonia::Builder::default()
            .link_rel(Some("nofollow noopener noreferrer"))
            .clean(&unsafe_html)
            .to_string()
    } else {
        format!(
            "<pre class=\"description-text\">{}</pre>",
            crate::error::html_escape(description)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_and_scripts_removed() {
        let html = render(
            "# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) **bold**",
            Some("text/markdown; charset=UTF-8"),
        );
        assert!(html.contains("<h3>Title</h3>"), "{html}");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("javascript:"));
    }

    #[test]
    fn other_formats_are_escaped_text() {
        let html = render("Title\n=====\n\n<b>x</b>", Some("text/x-rst"));
        assert!(html.starts_with("<pre"));
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(render("<i>", None).contains("&lt;i&gt;"));
    }
}
