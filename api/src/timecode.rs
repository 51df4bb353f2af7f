//! `HH:MM:SS[.fff]` timecodes, as Esup-Pod writes cut points and credit durations.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A position or length in a media file, written `HH:MM:SS` with optional fractional seconds.
///
/// Parsed once into milliseconds, so comparisons are exact and a malformed value is refused when
/// the object is read, and written back in canonical form (`00:00:07`, `01:02:03.500`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timecode {
    millis: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timecode {input:?}: expected HH:MM:SS or HH:MM:SS.fff")]
pub struct TimecodeError {
    input: String,
}

impl Timecode {
    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }

    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    pub fn as_secs_f64(self) -> f64 {
        self.millis as f64 / 1000.0
    }
}

impl FromStr for Timecode {
    type Err = TimecodeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || TimecodeError {
            input: input.to_owned(),
        };
        let mut parts = input.split(':');
        let (Some(h), Some(m), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
        if !digits(h) || m.len() != 2 || !digits(m) || whole.len() != 2 || !digits(whole) {
            return Err(invalid());
        }
        if s.contains('.') && (!digits(fraction) || fraction.len() > 3) {
            return Err(invalid());
        }
        let hours: u64 = h.parse().map_err(|_| invalid())?;
        let minutes: u64 = m.parse().map_err(|_| invalid())?;
        let seconds: u64 = whole.parse().map_err(|_| invalid())?;
        if minutes > 59 || seconds > 59 {
            return Err(invalid());
        }
        let millis_fraction: u64 = if fraction.is_empty() {
            0
        } else {
            format!("{fraction:0<3}").parse().map_err(|_| invalid())?
        };
        let millis = hours
            .checked_mul(3_600_000)
            .and_then(|v| v.checked_add(minutes * 60_000 + seconds * 1000 + millis_fraction))
            .ok_or_else(invalid)?;
        Ok(Self { millis })
    }
}

impl fmt::Display for Timecode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_seconds = self.millis / 1000;
        let (h, m, s) = (
            total_seconds / 3600,
            (total_seconds / 60) % 60,
            total_seconds % 60,
        );
        match self.millis % 1000 {
            0 => write!(f, "{h:02}:{m:02}:{s:02}"),
            ms => write!(f, "{h:02}:{m:02}:{s:02}.{ms:03}"),
        }
    }
}

impl Serialize for Timecode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timecode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl JsonSchema for Timecode {
    fn schema_name() -> Cow<'static, str> {
        "Timecode".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": r"^[0-9]+:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,3})?$",
            "maxLength": 16,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_esup_pod_sends() {
        let cases = [
            ("00:00:07", 7_000),
            ("00:17:00", 1_020_000),
            ("01:02:03.5", 3_723_500),
            ("100:00:00.125", 360_000_125),
        ];
        for (text, millis) in cases {
            assert_eq!(
                text.parse::<Timecode>(),
                Ok(Timecode::from_millis(millis)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_malformed_timecodes() {
        for text in [
            "",
            "7",
            "00:07",
            "00:60:00",
            "00:00:60",
            "0:0:7",
            "00:00:07.",
            "00:00:07.1234",
            "a:00:00",
            "00:00:07:00",
        ] {
            assert!(
                text.parse::<Timecode>().is_err(),
                "{text} should be rejected"
            );
        }
    }

    #[test]
    fn displays_canonically_and_round_trips_through_json() {
        let t: Timecode = "01:02:03.5".parse().expect("valid");
        assert_eq!(t.to_string(), "01:02:03.500");
        let json = serde_json::to_string(&t).expect("serialize");
        assert_eq!(
            serde_json::from_str::<Timecode>(&json).expect("deserialize"),
            t
        );
        assert!(serde_json::from_str::<Timecode>("\"12\"").is_err());
    }
}
