//! Settings: command-line flags > environment (`WHARF_*`) > config file (TOML) > defaults.

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod joining;
mod operations;
mod platform_tags;
pub mod sso;
pub mod trusted_publishing;
mod upstream;
pub use joining::{EmailDomains, Registration, normalize_domain};
pub use operations::{LogFormat, ShutdownGrace};
pub use platform_tags::AllowedPlatformTags;
pub use trusted_publishing::TrustedPublishing;
pub use upstream::{PrivatePrefixes, Span, UpstreamHosts};

/// A list setting given as a TOML list or as one comma-separated string (for `WHARF_*`).
#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrText {
    List(Vec<String>),
    Text(String),
}

impl ListOrText {
    fn entries(&self) -> Vec<&str> {
        match self {
            ListOrText::List(list) => list.iter().map(String::as_str).collect(),
            ListOrText::Text(text) => text.split(',').collect(),
        }
    }
}

/// Flags shared by every command that touches the index's data.
#[derive(Clone, Debug, Default, clap::Args, Serialize)]
pub struct SettingsArgs {
    /// A TOML file with any of the settings below.
    #[arg(long, global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Where the embedded database, files and outbox live [default: ./wharf-data].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite:PATH` or `postgres://…` [default: the SQLite file in the data directory].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// A directory path, `file:///…`, or `s3://bucket/prefix` [default: files/ in the data directory].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_url: Option<String>,
    /// The public URL of the index, used in links and as the token location.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Deliver mail through this SMTP server (`smtp://host:port`, `smtps://user:pass@host`)
    /// instead of writing it to the outbox directory.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
}

/// The `trusted_proxies` setting: a list of addresses and CIDR ranges, given as a TOML list or
/// as one comma-separated string (`WHARF_TRUSTED_PROXIES=10.0.0.0/8,192.0.2.7`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Parses each entry; a bare address is a range of one.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            let net = entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!(
                        "trusted_proxies: {entry:?} is not an IP address or CIDR range (such as 10.0.0.0/8 or 2001:db8::/32)"
                    )
                })?;
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl Serialize for TrustedProxies {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            List(Vec<String>),
            Text(String),
        }
        let parsed = match Given::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "trusted_proxies must be a list of addresses and CIDR ranges, or one comma-separated string",
            )
        })? {
            Given::List(list) => TrustedProxies::parse(list.iter().map(String::as_str)),
            Given::Text(text) => TrustedProxies::parse(text.split(',')),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

/// Who may read the index (the Simple and JSON APIs, files, the project pages): anyone, or
/// only people with an account (a session on the site, an API token for installers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadAccess {
    #[default]
    Public,
    Users,
}

impl<'de> Deserialize<'de> for ReadAccess {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given = String::deserialize(deserializer).unwrap_or_default();
        match given.trim() {
            "public" => Ok(ReadAccess::Public),
            "users" => Ok(ReadAccess::Users),
            other => Err(serde::de::Error::custom(format!(
                "read_access must be \"public\" or \"users\", not {other:?}"
            ))),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Settings {
    pub bind: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub storage_url: Option<String>,
    pub base_url: Option<String>,
    /// Largest file accepted by default, in bytes (projects may have a higher limit).
    pub max_upload_size: u64,
    /// How often a process looks for changes made by other processes, to refresh its caches.
    pub cache_refresh_ms: u64,
    /// `smtp://host:port`, `smtps://…` (user and password in the URL when needed). Without
    /// it, mail is written as `.eml` files to `<data-dir>/outbox/`.
    pub smtp_url: Option<String>,
    /// The sender of every message.
    pub mail_from: String,
    /// The server key (64 hex characters) that signs links, CSRF tokens and cookies. Every
    /// process of a scale-out deployment needs the same one. Without it, a key is generated
    /// into `<data-dir>/secret.key` on first start.
    pub secret_key: Option<String>,
    /// Every account must have two-factor authentication: signed-in users without it are
    /// sent to set it up before anything else.
    pub require_2fa: bool,
    /// Public keys that sign token leak reports (`/_/secrets/disclose-token`): a PEM file with
    /// one or more ECDSA P-256 keys, or an https URL answering in GitHub's format
    /// (`{"public_keys": [{"key_identifier": …, "key": PEM}]}`).
    pub leak_report_keys: Option<String>,
    /// Keep audit events this many days (then `wharf audit prune`, or the daily task of
    /// `serve`, deletes older ones behind a signed checkpoint). Unset: keep everything.
    pub audit_retention_days: Option<u32>,
    /// Sensitive pages ask for the password again when it was last entered longer ago than
    /// this, in seconds (warehouse: 30 minutes).
    pub reauth_secs: i64,
    /// A bearer token `/metrics` requires (`Authorization: Bearer …`, as Prometheus sends it).
    /// Unset: `/metrics` is open to anyone (aggregates only), and `serve` says so at start.
    pub metrics_token: Option<String>,
    /// The load balancers and reverse proxies in front of the index (addresses or CIDR
    /// ranges). Only a request from one of them has its client address taken from
    /// `X-Forwarded-For` (or `Forwarded`); from anyone else those headers are ignored.
    pub trusted_proxies: TrustedProxies,
    /// Who may create an account: `open` (anyone), `invite` (only with an invitation an
    /// admin sent), `closed` (admins create accounts).
    pub registration: Registration,
    /// When set, only addresses in these domains may register or be added to an account
    /// (subdomains only when listed).
    pub registration_email_domains: EmailDomains,
    /// Platform tags or `*` patterns uploads may carry beyond PyPI's rule (`linux_x86_64`).
    pub allowed_platform_tags: AllowedPlatformTags,
    /// `public`: anyone may read the index. `users`: reads need an account (see ReadAccess).
    pub read_access: ReadAccess,
    /// `text` (the default) or `json`: one JSON object per log line, for log shippers.
    pub log_format: LogFormat,
    /// On SIGTERM, how long requests in flight may take to finish before the server exits.
    pub shutdown_grace: ShutdownGrace,
    /// On SIGTERM, how long the server goes on accepting (with `/_ready` answering 503) before
    /// it stops, so that a load balancer takes it out of rotation first.
    pub shutdown_delay: Span,
    /// A client has this long to send a request's headers (also how long an idle kept-alive
    /// connection stays open): slow-header clients cannot hold connections.
    pub header_timeout: Span,
    /// A request (its body included) has this long to be answered, else 408: a body dripped
    /// a byte at a time cannot hold an upload open. Downloads are not cut: only the wait for
    /// the response counts.
    pub request_timeout: Span,
    /// Connections open at once; beyond it the server accepts no more until one closes.
    pub max_connections: usize,
    /// The Simple index whose projects this one also serves (e.g. `https://pypi.org/simple/`):
    /// every name not hosted here is answered from it, cached. Unset: no proxy.
    pub upstream_url: Option<String>,
    /// Basic credentials for an upstream that needs them (sent to its own host only).
    pub upstream_username: Option<String>,
    pub upstream_password: Option<String>,
    /// An API token for the upstream (sent as the password of `__token__`).
    pub upstream_token: Option<String>,
    /// Hosts besides the upstream's own that its files and redirects may be on.
    pub upstream_hosts: UpstreamHosts,
    /// How long an upstream page is used before it is asked again (conditionally).
    pub upstream_ttl: Span,
    /// Upstream files younger than this are hidden (`0s`: none are).
    pub upstream_min_age: Span,
    /// Connecting to the upstream, each read, and a whole page may take this long.
    pub upstream_timeout: Span,
    /// A whole upstream file may take this long.
    pub upstream_file_timeout: Span,
    /// Names with these prefixes are never looked up upstream.
    pub private_prefixes: PrivatePrefixes,
    /// Trusted publishing: the issuers whose ID tokens CI jobs exchange for upload tokens.
    pub trusted_publishing: TrustedPublishing,
    /// The organization's OpenID Connect providers people may sign in with.
    pub sso: Vec<sso::SsoProvider>,
    /// Password sign-in is off for everyone but administrators (who keep it, so that a
    /// provider's outage cannot lock the index).
    pub sso_only: bool,
    /// Whether wharf's own second factor is still asked after a provider's sign-in (of users
    /// who have one). Unset: not when the provider says it checked one (`amr` has `mfa`,
    /// `otp`, `hwk`, `swk`, `sms` or `fpt`), else yes.
    pub sso_requires_2fa: Option<bool>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            bind: "127.0.0.1:8000".to_owned(),
            data_dir: PathBuf::from("./wharf-data"),
            database_url: None,
            storage_url: None,
            base_url: None,
            max_upload_size: 100 * 1024 * 1024,
            cache_refresh_ms: 1000,
            smtp_url: None,
            mail_from: "wharf <noreply@localhost>".to_owned(),
            secret_key: None,
            require_2fa: false,
            leak_report_keys: None,
            audit_retention_days: None,
            reauth_secs: 30 * 60,
            metrics_token: None,
            trusted_proxies: TrustedProxies::default(),
            registration: Registration::Open,
            registration_email_domains: EmailDomains::default(),
            allowed_platform_tags: AllowedPlatformTags::default(),
            read_access: ReadAccess::default(),
            log_format: LogFormat::default(),
            shutdown_grace: ShutdownGrace::default(),
            shutdown_delay: Span(std::time::Duration::ZERO),
            header_timeout: Span(std::time::Duration::from_secs(30)),
            request_timeout: Span(std::time::Duration::from_secs(300)),
            max_connections: 4096,
            upstream_url: None,
            upstream_username: None,
            upstream_password: None,
            upstream_token: None,
            upstream_hosts: UpstreamHosts::default(),
            upstream_ttl: Span(std::time::Duration::from_secs(600)),
            upstream_min_age: Span(std::time::Duration::ZERO),
            upstream_timeout: Span(std::time::Duration::from_secs(30)),
            upstream_file_timeout: Span(std::time::Duration::from_secs(600)),
            private_prefixes: PrivatePrefixes::default(),
            trusted_publishing: TrustedPublishing::default(),
            sso: Vec::new(),
            sso_only: false,
            sso_requires_2fa: None,
        }
    }
}

/// Refuses a config file that names a setting wharf does not have: a typo such as
/// `requre_2fa = true` must not leave 2FA optional in silence.
fn check_keys(path: &std::path::Path, known: &[String]) -> anyhow::Result<()> {
    let table: std::collections::BTreeMap<String, figment::value::Value> =
        Figment::from(Toml::file(path))
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))?;
    for (key, value) in &table {
        if known.iter().any(|k| k == key) {
            if key == "trusted_publishing" {
                check_table_keys(path, key, value, trusted_publishing::FIELDS)?;
            }
            continue;
        }
        let hint = known
            .iter()
            .filter(|k| strsim::levenshtein(k, key) <= 2)
            .min_by_key(|k| strsim::levenshtein(k, key))
            .map(|k| format!(" (did you mean '{k}'?)"))
            .unwrap_or_default();
        anyhow::bail!("unknown setting '{key}' in {}{hint}", path.display());
    }
    Ok(())
}

/// Refuses a key of a setting table (`[trusted_publishing]`) that the table does not have.
fn check_table_keys(
    path: &std::path::Path,
    table: &str,
    value: &figment::value::Value,
    fields: &[&str],
) -> anyhow::Result<()> {
    let Some(dict) = value.as_dict() else {
        anyhow::bail!("{table} in {} must be a table", path.display());
    };
    for key in dict.keys() {
        if fields.contains(&key.as_str()) {
            continue;
        }
        let hint = fields
            .iter()
            .filter(|k| strsim::levenshtein(k, key) <= 2)
            .min_by_key(|k| strsim::levenshtein(k, key))
            .map(|k| format!(" (did you mean '{table}.{k}'?)"))
            .unwrap_or_default();
        anyhow::bail!(
            "unknown setting '{table}.{key}' in {}{hint}",
            path.display()
        );
    }
    Ok(())
}

/// The hard cap on any upload limit, as on PyPI.
pub const UPLOAD_LIMIT_CAP: u64 = 1024 * 1024 * 1024;

impl Settings {
    /// Merges defaults, the config file, `WHARF_*` variables and the flags.
    pub fn load(args: &SettingsArgs, bind: Option<&str>) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = &args.config {
            if !path.is_file() {
                anyhow::bail!("config file {} does not exist", path.display());
            }
            check_keys(path, &Settings::keys())?;
            figment = figment.merge(Toml::file(path));
        }
        let keys = Settings::keys();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let flat: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| *k != "trusted_publishing")
            .collect();
        figment = figment
            .merge(Env::prefixed("WHARF_").only(&flat))
            .merge(
                Env::prefixed("WHARF_TRUSTED_PUBLISHING_")
                    .only(trusted_publishing::FIELDS)
                    .map(|k| format!("trusted_publishing.{k}").into()),
            )
            .merge(Serialized::defaults(args));
        if let Some(bind) = bind {
            figment = figment.merge(Serialized::default("bind", bind));
        }
        let settings: Settings = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
        if settings.reauth_secs < 1 {
            anyhow::bail!("reauth_secs must be at least 1");
        }
        if settings
            .metrics_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            anyhow::bail!("metrics_token must not be empty (leave it unset to keep /metrics open)");
        }
        if settings.max_upload_size > UPLOAD_LIMIT_CAP {
            anyhow::bail!("max_upload_size may not exceed {UPLOAD_LIMIT_CAP} bytes");
        }
        upstream::check(&settings)?;
        trusted_publishing::check(&settings)?;
        let open = settings.registration == Registration::Open
            && settings.registration_email_domains.is_empty();
        sso::check(&settings.sso, open)?;
        if settings.sso_only && settings.sso.is_empty() {
            anyhow::bail!("sso_only needs at least one provider in sso");
        }
        operations::check(&settings)?;
        if let Some(base) = &settings.base_url {
            let parsed = url::Url::parse(base)
                .map_err(|e| anyhow::anyhow!("invalid base URL {base}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                anyhow::bail!("invalid base URL {base}: use http:// or https:// with a host");
            }
        }
        Ok(settings)
    }

    /// Every setting's name, from the defaults: the keys a config file and `WHARF_*` may set.
    fn keys() -> Vec<String> {
        match serde_json::to_value(Settings::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite:{}?mode=rwc",
                self.data_dir.join("wharf.db").display()
            )
        })
    }

    pub fn storage_url(&self) -> String {
        self.storage_url
            .clone()
            .unwrap_or_else(|| self.data_dir.join("files").display().to_string())
    }

    /// The public base URL without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.base_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.bind.replace("0.0.0.0", "127.0.0.1")),
        }
    }

    /// The host that tokens name as their location (PyPI uses its domain).
    pub fn token_location(&self) -> String {
        url::Url::parse(&self.base_url())
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".to_owned())
    }

    /// The `aud` trusted publishing's ID tokens must carry: the setting, else the base URL
    /// without its scheme: the host, with the port and path when it has them, so that two
    /// indexes on one host never accept each other's tokens (PyPI's is `pypi`, its name).
    pub fn oidc_audience(&self) -> String {
        if let Some(audience) = &self.trusted_publishing.audience {
            return audience.clone();
        }
        let Ok(url) = url::Url::parse(&self.base_url()) else {
            return self.token_location();
        };
        let mut audience = self.token_location();
        if let Some(port) = url.port() {
            audience.push_str(&format!(":{port}"));
        }
        audience.push_str(url.path().trim_end_matches('/'));
        audience
    }

    /// Whether cookies must carry `Secure`: the site is served over https.
    pub fn is_https(&self) -> bool {
        self.base_url().starts_with("https://")
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("wharf.toml");
        std::fs::write(&path, toml)?;
        let args = SettingsArgs {
            config: Some(path),
            ..SettingsArgs::default()
        };
        Settings::load(&args, None)
    }

    /// deploy/wharf.toml documents every setting: its commented-out lines name exactly the
    /// settings wharf has (those of a table after its `# [table]` line), and with the comment
    /// marks removed it is a valid config file.
    #[test]
    fn the_sample_config_documents_every_setting() {
        let sample = include_str!("../../../deploy/wharf.toml");
        let mut table = String::new();
        let mut settings: Vec<&str> = Vec::new();
        let mut named: Vec<String> = Vec::new();
        for line in sample.lines().filter_map(|line| line.strip_prefix("# ")) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                table = format!("{name}.");
                settings.push(line);
                continue;
            }
            let Some((key, _)) = line.split_once(" = ") else {
                continue;
            };
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
            {
                continue;
            }
            settings.push(line);
            named.push(format!("{table}{key}"));
        }
        named.sort();
        let mut keys: Vec<String> = Settings::keys()
            .into_iter()
            .filter(|k| k != "trusted_publishing")
            .chain(
                trusted_publishing::FIELDS
                    .iter()
                    .map(|f| format!("trusted_publishing.{f}")),
            )
            .collect();
        keys.sort();
        assert_eq!(named, keys);
        // Uncommented (with a real key in place of the placeholder, and one of the two ways
        // of giving upstream credentials), it loads.
        let uncommented = settings
            .iter()
            .filter(|line| {
                !line.starts_with("upstream_username") && !line.starts_with("upstream_password")
            })
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
            .replace(
                "\"…64 hex characters…\"",
                &format!("\"{}\"", "ab".repeat(32)),
            );
        let loaded = load(&uncommented).expect("the sample loads");
        assert_eq!(
            loaded.trusted_publishing.audience.as_deref(),
            Some("pypi.example.org")
        );
    }

    #[test]
    fn a_mistyped_setting_is_refused_with_its_name() {
        let error = load("requre_2fa = true\n").unwrap_err().to_string();
        assert!(
            error.starts_with("unknown setting 'requre_2fa' in "),
            "{error}"
        );
        assert!(error.ends_with("(did you mean 'require_2fa'?)"), "{error}");
        assert_eq!(error.lines().count(), 1);
        let error = load("colour = \"blue\"\n").unwrap_err().to_string();
        assert!(error.starts_with("unknown setting 'colour'") && !error.contains("mean"));
    }

    #[test]
    fn known_settings_load_and_bad_values_are_refused() {
        let settings = load("require_2fa = true\nreauth_secs = 60\n").expect("valid");
        assert!(settings.require_2fa);
        assert_eq!(settings.reauth_secs, 60);
        let error = load("require_2fa = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("require_2fa"), "{error}");
        assert!(load("reauth_secs = 0\n").is_err());
        assert!(load("this is not toml").is_err());
    }

    #[test]
    fn who_may_join_and_platform_tags_are_validated() {
        let settings = load(
            "registration = \"invite\"\nregistration_email_domains = [\"Example.org\"]\nallowed_platform_tags = [\"linux_*\"]\n",
        )
        .expect("valid");
        assert_eq!(settings.registration, Registration::Invite);
        assert!(settings.registration_email_domains.allows("a@example.org"));
        assert!(settings.allowed_platform_tags.allows("linux_x86_64"));
        assert_eq!(Settings::default().registration, Registration::Open);
        for (toml, key) in [
            (
                "registration = \"sometimes\"\n",
                "registration must be one of \"open\", \"invite\", \"closed\"",
            ),
            (
                "registration_email_domains = [\"*.example.org\"]\n",
                "registration_email_domains",
            ),
            (
                "allowed_platform_tags = [\"linux-x86_64\"]\n",
                "allowed_platform_tags",
            ),
        ] {
            let error = load(toml).unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
    }

    #[test]
    fn log_format_and_shutdown_grace_are_validated() {
        let settings = load("log_format = \"json\"\nshutdown_grace = \"2m\"\n").expect("valid");
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(
            settings.shutdown_grace.0,
            std::time::Duration::from_secs(120)
        );
        assert_eq!(Settings::default().log_format, LogFormat::Text);
        assert_eq!(Settings::default().shutdown_grace.0.as_secs(), 30);
        for (toml, message) in [
            (
                "log_format = \"xml\"\n",
                "log_format must be \"text\" or \"json\", not \"xml\"",
            ),
            (
                "shutdown_grace = \"soon\"\n",
                "shutdown_grace must be a duration such as \"30s\"",
            ),
            (
                "shutdown_grace = \"2h\"\n",
                "shutdown_grace must be at most 1h",
            ),
        ] {
            let error = load(toml).unwrap_err().to_string();
            assert!(error.contains(message), "{error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
    }

    #[test]
    fn connection_limits_are_validated() {
        let settings =
            load("header_timeout = \"5s\"\nrequest_timeout = \"2m\"\nmax_connections = 100\n")
                .expect("valid");
        assert_eq!(settings.header_timeout.0.as_secs(), 5);
        assert_eq!(settings.request_timeout.0.as_secs(), 120);
        assert_eq!(settings.max_connections, 100);
        let defaults = Settings::default();
        assert_eq!(
            (
                defaults.header_timeout.0.as_secs(),
                defaults.request_timeout.0.as_secs()
            ),
            (30, 300)
        );
        for (toml, message) in [
            (
                "header_timeout = \"0s\"\n",
                "header_timeout must be between 1s and 10m",
            ),
            (
                "header_timeout = \"1h\"\n",
                "header_timeout must be between 1s and 10m",
            ),
            (
                "request_timeout = \"2d\"\n",
                "request_timeout must be between 1s and 24h",
            ),
            ("request_timeout = \"soon\"\n", "request_timeout"),
            (
                "max_connections = 0\n",
                "max_connections must be between 1 and 1000000",
            ),
        ] {
            let error = load(toml).unwrap_err().to_string();
            assert!(error.contains(message), "{toml}: {error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
    }

    #[test]
    fn read_access_takes_public_or_users_only() {
        assert_eq!(load("").expect("valid").read_access, ReadAccess::Public);
        let users = load("read_access = \"users\"\n").expect("valid");
        assert_eq!(users.read_access, ReadAccess::Users);
        let error = load("read_access = \"members\"\n").unwrap_err().to_string();
        assert!(
            error.contains("read_access must be \"public\" or \"users\", not \"members\""),
            "{error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
    }

    #[test]
    fn trusted_publishing_issuers_and_audience_are_validated() {
        let defaults = load("").expect("valid");
        assert_eq!(defaults.trusted_publishing, TrustedPublishing::default());
        assert_eq!(
            defaults.trusted_publishing.github_issuer.as_str(),
            "https://token.actions.githubusercontent.com"
        );
        // The audience defaults to the base URL's host.
        let hosted = load("base_url = \"https://pypi.example.org/\"\n").expect("valid");
        assert_eq!(hosted.oidc_audience(), "pypi.example.org");
        // With a port or a path, they are part of it: two indexes on one host differ.
        let pathed = load("base_url = \"https://example.org:8443/pypi/\"\n").expect("valid");
        assert_eq!(pathed.oidc_audience(), "example.org:8443/pypi");
        let settings = load(
            "[trusted_publishing]\naudience = \"wharf\"\ngitlab_issuers = [\"https://gitlab.com\", \"http://127.0.0.1:9\"]\n",
        )
        .expect("valid");
        assert_eq!(settings.oidc_audience(), "wharf");
        assert_eq!(settings.trusted_publishing.gitlab_issuers.0.len(), 2);
        for (toml, message) in [
            (
                "[trusted_publishing]\ngithub_issuer = \"token.actions\"\n",
                "\"token.actions\" is not an issuer URL",
            ),
            (
                "[trusted_publishing]\ngitlab_issuers = [\"ftp://gitlab.example\"]\n",
                "\"ftp://gitlab.example\" is not an issuer URL",
            ),
            (
                "[trusted_publishing]\naudience = \"two words\"\n",
                "trusted_publishing.audience must be one word",
            ),
            (
                "[trusted_publishing]\ngitlab_issuers = [\"https://token.actions.githubusercontent.com\"]\n",
                "is given for two kinds of publisher",
            ),
            (
                "[trusted_publishing]\naudiance = \"x\"\n",
                "unknown setting 'trusted_publishing.audiance' in ",
            ),
        ] {
            let error = load(toml).unwrap_err().to_string();
            assert!(error.contains(message), "{error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
        let error = load("[trusted_publishing]\naudiance = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with("(did you mean 'trusted_publishing.audience'?)"),
            "{error}"
        );
    }
}
