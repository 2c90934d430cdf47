//! The settings of how the server runs for its operator: `log_format` (text or JSON lines),
//! `shutdown_grace` and `shutdown_delay` (how SIGTERM drains), and the limits that keep slow
//! and idle clients from holding the server (`header_timeout`, `request_timeout`,
//! `max_connections`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event; colour only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl Serialize for LogFormat {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given = String::deserialize(deserializer).unwrap_or_default();
        match given.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(serde::de::Error::custom(format!(
                "log_format must be \"text\" or \"json\", not {given:?}"
            ))),
        }
    }
}

/// How long a stopping server lets requests in flight finish (`30s`, `2m`; at most an hour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownGrace(pub Duration);

impl Default for ShutdownGrace {
    fn default() -> ShutdownGrace {
        ShutdownGrace(Duration::from_secs(30))
    }
}

impl Serialize for ShutdownGrace {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{}s", self.0.as_secs()))
    }
}

impl<'de> Deserialize<'de> for ShutdownGrace {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given = String::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("shutdown_grace must be a duration such as \"30s\" or \"2m\"")
        })?;
        match humantime::parse_duration(given.trim()) {
            Ok(grace) if grace <= Duration::from_secs(3600) => Ok(ShutdownGrace(grace)),
            Ok(_) => Err(serde::de::Error::custom(format!(
                "shutdown_grace must be at most 1h, not {given:?}"
            ))),
            Err(_) => Err(serde::de::Error::custom(format!(
                "shutdown_grace must be a duration such as \"30s\" or \"2m\", not {given:?}"
            ))),
        }
    }
}

/// The bounds of the draining and connection settings.
pub fn check(settings: &super::Settings) -> anyhow::Result<()> {
    const HOUR: Duration = Duration::from_secs(3600);
    if settings.shutdown_delay.0 > HOUR {
        anyhow::bail!("shutdown_delay must be at most 1h");
    }
    let header = settings.header_timeout.0;
    if header < Duration::from_secs(1) || header > Duration::from_secs(600) {
        anyhow::bail!("header_timeout must be between 1s and 10m");
    }
    let request = settings.request_timeout.0;
    if request < Duration::from_secs(1) || request > 24 * HOUR {
        anyhow::bail!("request_timeout must be between 1s and 24h");
    }
    if !(1..=1_000_000).contains(&settings.max_connections) {
        anyhow::bail!("max_connections must be between 1 and 1000000");
    }
    Ok(())
}
