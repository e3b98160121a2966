//! Durations as Istio YAML writes them: Go style (`10s`, `1h30m`, `100ms`, `1.5s`) and protobuf JSON style
//! (`3.000000001s`), which is Go style with one unit.
//!
//! [`parse_duration`] follows Go's `time.ParseDuration` — a sequence of decimal numbers, each with an optional
//! fraction and a unit among `ns`, `us` (`µs`, `μs`), `ms`, `s`, `m`, `h`; a bare `0` is zero — except that signs
//! are not accepted: Istio has no negative durations. Values are exact to the nanosecond (further digits are cut
//! off) and at most protobuf's limit of 10,000 years. Range checks such as "at least 1ms" belong to validation.

use std::time::Duration;

/// Largest value a `google.protobuf.Duration` may hold: 10,000 years.
const MAX_SECONDS: u64 = 315_576_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;
/// Fraction digits kept: more than any unit can turn into whole nanoseconds.
const MAX_FRACTION_DIGITS: usize = 20;

/// Parses an Istio duration such as `10s`, `0.5s`, `100ms`, `1h30m` or `3.000000001s`.
///
/// The error says what is wrong in words fit for a diagnostic, e.g. ``missing unit in "10" (expected e.g. 10s,
/// 1.5s, 100ms, 1h30m)``.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected e.g. 10s, 1.5s, 100ms, 1h30m";
    if text.is_empty() {
        return Err(format!("empty duration ({EXPECTED})"));
    }
    if text.starts_with('-') {
        return Err(format!("negative duration {text:?}: durations must be 0 or more"));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let integer_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (integer, after) = rest.split_at(integer_len);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after) => {
                let fraction_len = after.bytes().take_while(u8::is_ascii_digit).count();
                after.split_at(fraction_len)
            }
            None => ("", after),
        };
        if integer.is_empty() && fraction.is_empty() {
            return Err(format!("invalid duration {text:?}: expected a number at {rest:?} ({EXPECTED})"));
        }
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SECOND,
            "m" => 60 * NANOS_PER_SECOND,
            "h" => 3_600 * NANOS_PER_SECOND,
            "" => return Err(format!("missing unit in duration {text:?} ({EXPECTED})")),
            other => {
                return Err(format!(
                    "unknown unit {other:?} in duration {text:?} (units are ns, us, ms, s, m, h; {EXPECTED})"
                ));
            }
        };
        let too_large = || format!("duration {text:?} is too large (at most 10000 years)");
        // At most 20 integer digits fit a u128 product with any unit; more is too large anyway.
        let integer: u128 = if integer.is_empty() { 0 } else { integer.parse().map_err(|_| too_large())? };
        let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
        let fraction_nanos = if fraction.is_empty() {
            0
        } else {
            let digits: u128 = fraction.parse().map_err(|_| too_large())?;
            digits * unit_nanos / 10u128.pow(fraction.len() as u32)
        };
        let part = integer.checked_mul(unit_nanos).and_then(|n| n.checked_add(fraction_nanos)).ok_or_else(too_large)?;
        total = total.checked_add(part).ok_or_else(too_large)?;
        if total > u128::from(MAX_SECONDS) * NANOS_PER_SECOND {
            return Err(too_large());
        }
        rest = after;
    }
    let seconds = u64::try_from(total / NANOS_PER_SECOND).map_err(|_| format!("duration {text:?} is too large"))?;
    let nanos = u32::try_from(total % NANOS_PER_SECOND).map_err(|_| format!("duration {text:?} is too large"))?;
    Ok(Duration::new(seconds, nanos))
}

/// The protobuf form of `d`, saturating at `i64::MAX` seconds (beyond anything [`parse_duration`] returns).
pub fn to_proto(d: Duration) -> api_protos::pb::google::protobuf::Duration {
    api_protos::pb::google::protobuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Duration {
        parse_duration(text).unwrap_or_else(|err| panic!("{text:?} should parse: {err}"))
    }

    fn err(text: &str) -> String {
        match parse_duration(text) {
            Ok(d) => panic!("{text:?} should not parse, got {d:?}"),
            Err(err) => err,
        }
    }

    #[test]
    fn parses_single_units() {
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("100ms"), Duration::from_millis(100));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1us"), Duration::from_micros(1));
        assert_eq!(ok("1µs"), Duration::from_micros(1));
        assert_eq!(ok("1μs"), Duration::from_micros(1));
        assert_eq!(ok("100ns"), Duration::from_nanos(100));
    }

    #[test]
    fn parses_fractions() {
        assert_eq!(ok("0.5s"), Duration::from_millis(500));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("5.s"), Duration::from_secs(5));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("0.001ms"), Duration::from_micros(1));
    }

    #[test]
    fn parses_compound_durations() {
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("2m3.5s"), Duration::from_millis(123_500));
        assert_eq!(ok("1h1m1s1ms1us1ns"), Duration::new(3661, 1_001_001));
    }

    #[test]
    fn parses_protobuf_json_style_to_the_nanosecond() {
        assert_eq!(ok("3.000000001s"), Duration::new(3, 1));
        assert_eq!(ok("0.000000001s"), Duration::from_nanos(1));
        assert_eq!(ok("3.0000000019s"), Duration::new(3, 1), "digits beyond nanoseconds are cut off");
        assert_eq!(ok("0.123456789012345678901234567890s"), Duration::from_nanos(123_456_789));
    }

    #[test]
    fn parses_zero() {
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("0.0s"), Duration::ZERO);
    }

    #[test]
    fn rejects_negative_durations() {
        assert!(err("-1s").contains("negative"));
        assert!(err("-0.5s").contains("negative"));
    }

    #[test]
    fn rejects_empty_and_missing_units() {
        assert!(err("").contains("empty"));
        assert!(err("10").contains("missing unit"));
        assert!(err("1h30").contains("missing unit"));
        assert!(err("1.5").contains("missing unit"));
    }

    #[test]
    fn rejects_junk() {
        assert!(err("10 s").contains("unknown unit"));
        assert!(err("10sec").contains("unknown unit"));
        assert!(err("1d").contains("unknown unit"));
        assert!(err("s").contains("expected a number"));
        assert!(err(".s").contains("expected a number"));
        assert!(err("1s.").contains("expected a number"));
        assert!(err("+1s").contains("expected a number"));
        assert!(err("1..5s").contains("missing unit"));
        assert!(err(" 1s").contains("expected a number"));
    }

    #[test]
    fn rejects_values_beyond_the_protobuf_limit() {
        assert!(err("315576000001s").contains("too large"));
        assert!(err("99999999999999999999999999999999999999999h").contains("too large"));
        assert_eq!(ok("315576000000s"), Duration::from_secs(MAX_SECONDS));
    }

    #[test]
    fn converts_to_protobuf() {
        let proto = to_proto(ok("3.000000001s"));
        assert_eq!((proto.seconds, proto.nanos), (3, 1));
        let proto = to_proto(Duration::from_millis(1500));
        assert_eq!((proto.seconds, proto.nanos), (1, 500_000_000));
        let proto = to_proto(Duration::MAX);
        assert_eq!(proto.seconds, i64::MAX);
    }
}
