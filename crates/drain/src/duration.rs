//! Durations on the command line and in logs: `30s`, `1m30s`, `250ms`, or a bare
//! number of seconds (`30`, `0.5`), since Kubernetes users think in seconds.
//!
//! Every duration read here is at most [`MAX_DURATION`] (a year): no grace
//! period, delay or timeout needs more, and a bound keeps `Instant + d` and
//! millisecond arithmetic from overflowing on a value such as `1e30`.

use std::time::Duration;

/// A duration that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (examples: 30s, 1m30s, 250ms, 0.5)")]
pub struct DurationError {
    input: String,
    reason: String,
}

/// The longest duration [`parse_duration`] accepts: 365 days.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// Reads `30s`, `1m30s`, `250ms` or a bare number of seconds, at most
/// [`MAX_DURATION`].
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    let err = |reason: &str| DurationError {
        input: input.to_string(),
        reason: reason.into(),
    };
    if s.is_empty() {
        return Err(err("empty"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return Err(err("must be a finite, non-negative number of seconds"));
        }
        if secs > MAX_DURATION.as_secs_f64() {
            return Err(err(TOO_LONG));
        }
        return Ok(Duration::from_secs_f64(secs));
    }
    match humantime::parse_duration(s) {
        Ok(d) if d > MAX_DURATION => Err(err(TOO_LONG)),
        Ok(d) => Ok(d),
        Err(e) => Err(err(&e.to_string())),
    }
}

const TOO_LONG: &str = "longer than the maximum of 365 days";

/// Formats a duration for a human reading a log: `27.9s`, `850ms`, `2m05s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_bare_seconds() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("12").unwrap(), Duration::from_secs(12));
    }

    #[test]
    fn rejects_garbage_with_the_input_named() {
        let e = parse_duration("thirty").unwrap_err().to_string();
        assert!(e.contains("\"thirty\""), "{e}");
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn a_number_too_large_for_a_duration_is_an_error_naming_it() {
        for input in [
            "1e30",
            "1e300",
            "18446744073709551616",
            "400d",
            "1000000000000y",
        ] {
            let e = parse_duration(input).unwrap_err().to_string();
            assert!(e.contains(&format!("{input:?}")), "{input}: {e}");
        }
        for input in ["NaN", "inf", "-0.5", "-1s"] {
            assert!(parse_duration(input).is_err(), "{input}");
        }
        assert_eq!(parse_duration("365d").unwrap(), MAX_DURATION);
    }

    #[test]
    fn formats_for_humans() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(27_940)), "27.9s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
