//! The two time formats: RFC 3339 for people (CLI, admin API, payloads) and Unix
//! milliseconds for the webhook outbox.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339, the one time format of the CLI and the API.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("valid RFC 3339 time")
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    unix_ms(OffsetDateTime::now_utc())
}

/// `t` in Unix milliseconds (saturating far outside any real date).
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The time of `ms` Unix milliseconds; `None` out of range.
pub fn from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// `d` in whole milliseconds, the unit event times are kept in; saturates at `i64::MAX`
/// so an absurdly long configured duration means "never" instead of wrapping.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
