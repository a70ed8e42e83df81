//! Microsecond UTC timestamps, formatted as Go's `time.RFC3339Nano`.
//!
//! Audit hashes cover the event time as text (COMPATIBILITY.md §8.3). Postgres `TIMESTAMPTZ` keeps
//! microseconds, so the time is truncated to microseconds before hashing; after that the
//! value read back from the database re-formats to the same bytes.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A point in time with microsecond precision (microseconds since the Unix epoch, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A timestamp string that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp {input:?} (example: 2026-05-14T10:11:12Z)")]
pub struct TimestampError {
    /// The rejected input, shortened to 64 characters.
    pub input: String,
}

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
        };
        Self(micros)
    }

    /// From microseconds since the epoch.
    pub const fn from_unix_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// From nanoseconds since the epoch, truncated toward the past to whole microseconds,
    /// as Go's `Time.Truncate(time.Microsecond)` does.
    pub fn from_unix_nanos(nanos: i128) -> Self {
        Self(
            i64::try_from(nanos.div_euclid(1000)).unwrap_or(if nanos < 0 {
                i64::MIN
            } else {
                i64::MAX
            }),
        )
    }

    /// Microseconds since the epoch.
    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (floor).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Parses RFC 3339 with any offset and any fraction (truncated to microseconds).
    pub fn parse_rfc3339(input: &str) -> Result<Self, TimestampError> {
        let err = || TimestampError {
            input: input.chars().take(64).collect(),
        };
        let text = input.trim();
        // Go's layout has a literal 'T'; the `time` crate also takes ' ' and 't'.
        if text.as_bytes().get(10) != Some(&b'T') {
            return Err(err());
        }
        OffsetDateTime::parse(text, &Rfc3339)
            .map(|t| Self::from_unix_nanos(t.unix_timestamp_nanos()))
            .map_err(|_| err())
    }

    fn datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .to_offset(UtcOffset::UTC)
    }

    /// Appends Go's `RFC3339Nano` form in UTC: fraction digits with trailing zeros removed,
    /// no fraction at all when it is zero, `Z` for the offset.
    pub fn write_rfc3339_nano(self, out: &mut String) {
        use fmt::Write as _;
        let t = self.datetime();
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let micros = self.0.rem_euclid(1_000_000);
        if micros != 0 {
            let digits = format!(".{micros:06}");
            out.push_str(digits.trim_end_matches('0'));
        }
        out.push('Z');
    }

    /// Go's `RFC3339Nano` form in UTC.
    pub fn to_rfc3339_nano(self) -> String {
        let mut s = String::with_capacity(32);
        self.write_rfc3339_nano(&mut s);
        s
    }

    /// As a `time` value (for database binding).
    pub fn to_offset_datetime(self) -> OffsetDateTime {
        self.datetime()
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Self::from_unix_nanos(t.unix_timestamp_nanos())
    }
}

/// Reads the RFC 3339 text written for the event (`ts` of an audit line); the parse error's
/// text is the deserialization error, so a bad line says what was wrong with its time.
impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339_nano())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano_after_truncation() {
        let cases = [
            (
                "2026-05-14T10:11:12.123456789Z",
                "2026-05-14T10:11:12.123456Z",
            ),
            ("2026-05-14T10:11:12Z", "2026-05-14T10:11:12Z"),
            ("2026-05-14T10:11:12.000000999Z", "2026-05-14T10:11:12Z"),
            ("2026-05-14T10:11:12.120000Z", "2026-05-14T10:11:12.12Z"),
            ("2026-05-14T12:11:12.5+02:00", "2026-05-14T10:11:12.5Z"),
            (
                "1969-12-31T23:59:59.9999999Z",
                "1969-12-31T23:59:59.999999Z",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                Timestamp::parse_rfc3339(input).unwrap().to_rfc3339_nano(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_non_rfc3339() {
        for bad in [
            "",
            "yesterday",
            "2026-05-14",
            "2026-05-14 10:11:12Z",
            "2026-13-01T00:00:00Z",
        ] {
            let err = Timestamp::parse_rfc3339(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid RFC 3339 timestamp"),
                "{bad}"
            );
        }
    }

    #[test]
    fn negative_nanos_truncate_toward_the_past() {
        assert_eq!(Timestamp::from_unix_nanos(-1).unix_micros(), -1);
        assert_eq!(Timestamp::from_unix_nanos(1999).unix_micros(), 1);
        assert_eq!(Timestamp::from_unix_micros(-1).unix_seconds(), -1);
    }
}
