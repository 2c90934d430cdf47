//! Time, as integers (unix microseconds), with an offset tests can move.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_micros: Arc<AtomicI64>,
}

impl Clock {
    pub fn now_micros(&self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        now + self.offset_micros.load(Ordering::Relaxed)
    }

    pub fn now_secs(&self) -> i64 {
        self.now_micros().div_euclid(1_000_000)
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, seconds: i64) {
        self.offset_micros
            .fetch_add(seconds * 1_000_000, Ordering::Relaxed);
    }
}

/// `2024-01-17T16:53:12.779164Z`, the Simple API's `upload-time`.
pub fn iso8601_micros(micros: i64) -> String {
    let (date, time) = split(micros);
    format!("{date}T{time}.{:06}Z", micros.rem_euclid(1_000_000))
}

/// `2024-01-17T16:53:12`, the JSON API's `upload_time`.
pub fn iso8601_seconds(micros: i64) -> String {
    let (date, time) = split(micros);
    format!("{date}T{time}")
}

/// A time typed by a person (unix micros): RFC 3339 (`2026-12-01T12:00:00Z`, any offset) or
/// a date, `2026-12-01`, meaning its midnight UTC. `None` for anything else.
pub fn parse_instant(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(at) =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Some((at.unix_timestamp_nanos() / 1_000) as i64);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1_000_000)
}

fn split(micros: i64) -> (String, String) {
    let at = time::OffsetDateTime::from_unix_timestamp(micros.div_euclid(1_000_000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let date = format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    );
    let time = format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second());
    (date, time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_upload_times() {
        let micros = 1_705_510_392_779_164;
        assert_eq!(iso8601_micros(micros), "2024-01-17T16:53:12.779164Z");
        assert_eq!(iso8601_seconds(micros), "2024-01-17T16:53:12");
    }

    #[test]
    fn instants_are_dates_or_rfc3339() {
        assert_eq!(parse_instant("2024-01-17"), Some(1_705_449_600_000_000));
        assert_eq!(
            parse_instant(" 2024-01-17T16:53:12Z "),
            Some(1_705_510_392_000_000)
        );
        assert_eq!(
            parse_instant("2024-01-17T17:53:12.5+01:00"),
            Some(1_705_510_392_500_000)
        );
        for bad in [
            "",
            "2024-13-01",
            "17/01/2024",
            "2024-01-17 16:53",
            "yesterday",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }

    #[test]
    fn advancing_moves_every_clone() {
        let clock = Clock::default();
        let other = clock.clone();
        let before = other.now_secs();
        clock.advance(3600);
        assert!(other.now_secs() >= before + 3600);
    }
}
