//! Talking to the upstream index as a careful client: its pages (PEP 691 JSON preferred, PEP
//! 503 HTML understood) under a size cap and a total timeout, asked conditionally; files from
//! the upstream's own hosts only; redirects followed only within those hosts; credentials sent
//! to the upstream's host alone.

use std::time::Duration;

use bytes::Bytes;
use url::Url;
use wharf_packaging::index_page::{self, MAX_PAGE_BYTES, ProjectPage};

use crate::config::Settings;

const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

/// Why the upstream could not be used; the text is logged and shown in 502 answers, so it
/// names the problem and never a credential.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UpstreamError(pub String);

pub type Result<T> = std::result::Result<T, UpstreamError>;

/// What the upstream said about a project page.
pub enum PageAnswer {
    /// 304: the kept page is current.
    NotModified,
    Page {
        page: ProjectPage,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// 404 (or 410): the upstream has no such project.
    NotFound,
}

#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    /// The Simple index root, with a trailing slash.
    pub root: Url,
    /// Where files and redirects may point: host and port (the root's own first); no port
    /// means the scheme's default.
    hosts: Vec<Allowed>,
    credentials: Option<(String, String)>,
    page_timeout: Duration,
    file_timeout: Duration,
}

impl Upstream {
    pub fn new(settings: &Settings) -> anyhow::Result<Option<Upstream>> {
        let Some(given) = &settings.upstream_url else {
            return Ok(None);
        };
        let mut root = Url::parse(given)?;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        let own = root.host_str().unwrap_or_default().to_ascii_lowercase();
        let mut hosts = vec![Allowed {
            host: own.clone(),
            port: root.port_or_known_default(),
        }];
        if own == "pypi.org" {
            hosts.push(Allowed {
                host: "files.pythonhosted.org".to_owned(),
                port: None,
            });
        }
        hosts.extend(settings.upstream_hosts.0.iter().map(|entry| {
            match entry.rsplit_once(':').filter(|(h, _)| !h.ends_with(':')) {
                Some((host, port)) if port.parse::<u16>().is_ok() && !host.is_empty() => Allowed {
                    host: host.to_owned(),
                    port: port.parse().ok(),
                },
                _ => Allowed {
                    host: entry.clone(),
                    port: None,
                },
            }
        }));
        let allowed = hosts.clone();
        let secure = root.scheme() == "https";
        // A redirect is followed only to an allowed host, and never from https to http;
        // reqwest drops credentials when a redirect leaves the origin, and we send them only
        // to the root's origin anyway.
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            let host = attempt
                .url()
                .host_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if attempt.previous().len() >= 5 {
                attempt.error("more than 5 redirects")
            } else if secure && attempt.url().scheme() != "https" {
                attempt.error("a redirect from https to plain http")
            } else if !matches!(attempt.url().scheme(), "http" | "https")
                || !allowed.iter().any(|a| a.admits(attempt.url()))
            {
                attempt.error(format!(
                    "a redirect to {host}, which is not an upstream host"
                ))
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION"), " (proxy)"))
            .connect_timeout(settings.upstream_timeout.0)
            .read_timeout(settings.upstream_timeout.0)
            .redirect(policy)
            .build()?;
        let credentials = match (&settings.upstream_token, &settings.upstream_username) {
            (Some(token), _) => Some(("__token__".to_owned(), token.clone())),
            (None, Some(user)) => Some((
                user.clone(),
                settings.upstream_password.clone().unwrap_or_default(),
            )),
            (None, None) => None,
        };
        Ok(Some(Upstream {
            client,
            root,
            hosts,
            credentials,
            page_timeout: settings.upstream_timeout.0,
            file_timeout: settings.upstream_file_timeout.0,
        }))
    }

    /// The root URL as it may be shown (it never holds credentials).
    pub fn describe(&self) -> &str {
        self.root.as_str()
    }

    fn request(&self, url: &Url, timeout: Duration) -> reqwest::RequestBuilder {
        let mut request = self.client.get(url.clone()).timeout(timeout);
        // Credentials go to the root's origin alone: same scheme, host and port.
        if let Some((user, password)) = &self.credentials
            && url.origin() == self.root.origin()
        {
            request = request.basic_auth(user, Some(password));
        }
        request
    }

    /// Whether `url` is on one of the upstream's hosts, and no less secure than the root (an
    /// https upstream's files are fetched over https only).
    pub fn is_upstream_host(&self, url: &Url) -> bool {
        let scheme_ok = match self.root.scheme() {
            "https" => url.scheme() == "https",
            _ => matches!(url.scheme(), "http" | "https"),
        };
        scheme_ok && self.hosts.iter().any(|a| a.admits(url))
    }

    /// The page URL of a project.
    pub fn page_url(&self, normalized: &str) -> Result<Url> {
        self.root
            .join(&format!("{normalized}/"))
            .map_err(|e| UpstreamError(format!("no upstream URL for {normalized}: {e}")))
    }

    /// Asks for a project page, conditionally when validators of a kept copy are given.
    pub async fn page(
        &self,
        normalized: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<PageAnswer> {
        let url = self.page_url(normalized)?;
        let mut request = self
            .request(&url, self.page_timeout)
            .header(reqwest::header::ACCEPT, ACCEPT);
        if let Some(etag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(date) = last_modified {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, date);
        }
        let mut response = request.send().await.map_err(|e| failure("the page", &e))?;
        let status = response.status();
        match status.as_u16() {
            304 => return Ok(PageAnswer::NotModified),
            404 | 410 => return Ok(PageAnswer::NotFound),
            200 => {}
            _ => {
                return Err(UpstreamError(format!(
                    "the upstream answered {status} for the page of {normalized}"
                )));
            }
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
        let etag = header(reqwest::header::ETAG);
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        let format = index_page::format_of(&content_type).ok_or_else(|| {
            UpstreamError(format!(
                "the upstream's page of {normalized} is neither PEP 691 JSON nor PEP 503 HTML (Content-Type {content_type:?})"
            ))
        })?;
        let too_big = || {
            UpstreamError(format!(
                "the upstream's page of {normalized} is larger than {} MiB",
                MAX_PAGE_BYTES / (1024 * 1024)
            ))
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_PAGE_BYTES as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failure("the page", &e))?
        {
            if body.len() + chunk.len() > MAX_PAGE_BYTES {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        let page = index_page::parse_project(format, &body).map_err(|e| {
            UpstreamError(format!(
                "the upstream's page of {normalized} is unusable: {e}"
            ))
        })?;
        Ok(PageAnswer::Page {
            page,
            etag,
            last_modified,
        })
    }

    /// Starts downloading a file: the response once its status is 200, to be read chunk by
    /// chunk within the file timeout.
    pub async fn file(&self, url: &Url) -> Result<FileDownload> {
        if !self.is_upstream_host(url) {
            let why = if self.root.scheme() == "https" && url.scheme() == "http" {
                "the upstream's file URL is plain http under an https upstream".to_owned()
            } else {
                format!(
                    "the upstream's file URL is on {}, which is not an upstream host (see upstream_hosts)",
                    url.host_str().unwrap_or("no host")
                )
            };
            return Err(UpstreamError(why));
        }
        let response = self
            .request(url, self.file_timeout)
            .send()
            .await
            .map_err(|e| failure("the file", &e))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(UpstreamError(format!(
                "the upstream answered {status} for a file"
            )));
        }
        Ok(FileDownload { response })
    }
}

/// A host (and port) the upstream's files and redirects may point at.
#[derive(Clone, Debug)]
struct Allowed {
    host: String,
    /// None: the URL's scheme's default port only.
    port: Option<u16>,
}

impl Allowed {
    /// Whether `url` is on this host and port: another port of the same host may be another
    /// service entirely.
    fn admits(&self, url: &Url) -> bool {
        let host_ok = url
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(&self.host));
        let port_ok = match self.port {
            Some(port) => url.port_or_known_default() == Some(port),
            None => url.port().is_none(),
        };
        host_ok && port_ok
    }
}

/// A file on its way from the upstream.
pub struct FileDownload {
    response: reqwest::Response,
}

impl FileDownload {
    /// The size the upstream announces, if any.
    pub fn announced_size(&self) -> Option<u64> {
        self.response.content_length()
    }

    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        self.response
            .chunk()
            .await
            .map_err(|e| failure("the file", &e))
    }
}

/// A transport failure in words, without the URL (which reqwest puts in its messages and
/// which could carry a user name).
fn failure(what: &str, error: &reqwest::Error) -> UpstreamError {
    let kind = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not be reached".to_owned()
    } else if error.is_redirect() {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
        let mut reason = "redirected too often or elsewhere".to_owned();
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        format!("redirected badly ({reason})")
    } else {
        "failed while sending".to_owned()
    };
    UpstreamError(format!("the upstream {kind} for {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(url: &str) -> Upstream {
        let settings = Settings {
            upstream_url: Some(url.to_owned()),
            ..Settings::default()
        };
        Upstream::new(&settings)
            .expect("upstream")
            .expect("configured")
    }

    #[test]
    fn an_https_upstream_is_never_left_for_plain_http() {
        let pypi = upstream("https://pypi.org/simple/");
        let url = |u: &str| Url::parse(u).expect("url");
        assert!(pypi.is_upstream_host(&url("https://files.pythonhosted.org/packages/x.whl")));
        assert!(!pypi.is_upstream_host(&url("http://files.pythonhosted.org/packages/x.whl")));
        assert!(!pypi.is_upstream_host(&url("https://elsewhere.example/x.whl")));
        // The root's own port only: another port of the host may be another service.
        let plain = upstream("http://127.0.0.1:3141/simple/");
        assert!(plain.is_upstream_host(&url("http://127.0.0.1:3141/x.whl")));
        assert!(!plain.is_upstream_host(&url("http://127.0.0.1:6379/x.whl")));
        assert!(!plain.is_upstream_host(&url("https://127.0.0.1/x.whl")));
        let settings = Settings {
            upstream_url: Some("http://10.0.0.5/simple/".to_owned()),
            upstream_hosts: crate::config::UpstreamHosts(vec![
                "files.example".to_owned(),
                "10.0.0.6:8080".to_owned(),
            ]),
            ..Settings::default()
        };
        let mirror = Upstream::new(&settings)
            .expect("upstream")
            .expect("configured");
        assert!(mirror.is_upstream_host(&url("http://10.0.0.5/x.whl")));
        assert!(!mirror.is_upstream_host(&url("http://10.0.0.5:6379/x.whl")));
        assert!(mirror.is_upstream_host(&url("https://files.example/x.whl")));
        assert!(!mirror.is_upstream_host(&url("https://files.example:8443/x.whl")));
        assert!(mirror.is_upstream_host(&url("http://10.0.0.6:8080/x.whl")));
        assert!(!mirror.is_upstream_host(&url("http://10.0.0.6/x.whl")));
    }
}
