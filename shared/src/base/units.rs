//! Units people type and read: durations, sizes, member IDs (`%016x`, as etcd prints them).

use std::time::Duration;

/// Parses a duration as kubectl and etcdctl take them (Go's `time.ParseDuration`: `5s`,
/// `500ms`, `1m30s`, `1h30m`, `1.5h`, units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), through
/// `humantime`, which reads those and more (`2h 30m`, `1day`); plain seconds (`5`) as before.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration; use a value such as 5s or 500ms".into());
    }
    // A number alone is seconds (humantime wants a unit), a sign is refused here rather than
    // called an unknown unit.
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs, s);
    }
    if s.starts_with('-') {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    match humantime::parse_duration(s.strip_prefix('+').unwrap_or(s)) {
        Ok(d) => secs_to_duration(d.as_secs_f64(), s),
        Err(humantime::DurationError::NumberOverflow) => secs_to_duration(f64::MAX, s),
        Err(humantime::DurationError::UnknownUnit { unit, .. }) if !unit.is_empty() => {
            Err(format!("invalid duration {s:?}: unknown unit {unit:?}; use ns, us, ms, s, m or h (5s, 500ms, 1m30s)"))
        }
        Err(_) => Err(format!("invalid duration {s:?}; use a value such as 5s, 500ms or 1m30s")),
    }
}

/// The shortest timeout that can work: a TCP connect and a TLS handshake on loopback take
/// about a millisecond.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(10);
/// The longest duration accepted (a year): longer ones are typing errors.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

fn secs_to_duration(secs: f64, s: &str) -> Result<Duration, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!("invalid duration {s:?}: longer than a year; use a value such as 5s, 10m or 2h"));
    }
    let d = Duration::from_secs_f64(secs);
    if d < MIN_TIMEOUT {
        return Err(format!(
            "duration {s:?} is too short to work: use at least {} (etcdctl's defaults: --dial-timeout 2s, --command-timeout 5s)",
            format_duration(MIN_TIMEOUT)
        ));
    }
    Ok(d)
}

/// The shortest `--watch` interval: a watch redraws a table, it is not a busy loop.
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// [`parse_duration`] for `--watch` intervals (at least [`MIN_INTERVAL`]).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_INTERVAL {
        return Err(format!(
            "interval {s:?} is shorter than {}: a watch round takes longer than that",
            format_duration(MIN_INTERVAL)
        ));
    }
    Ok(d)
}

/// [`parse_duration`] for how long to wait for something, where `0` (`0s`) means not at all.
pub fn parse_wait(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.trim_end_matches(|c: char| c.is_ascii_alphabetic()).parse::<f64>().is_ok_and(|v| v == 0.0) {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

/// [`parse_duration`] for a window of time back from now (`doctor logs --since`), as `kubectl
/// logs --since` takes it: with a unit, and longer than nothing.
pub fn parse_window(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.parse::<f64>().is_ok() {
        return Err(format!("invalid window {t:?}: give a unit, as kubectl logs --since does (30s, 10m, 2h)"));
    }
    if parse_wait(t) == Ok(Duration::ZERO) {
        return Err(format!("a window of {t:?} reads nothing: give one such as 30m or 2h"));
    }
    parse_duration(t)
}

/// Formats a duration for humans: `850ms`, `2.1s`, `3m05s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{:.2}ms", ms)
    } else if ms < 1000.0 {
        format!("{:.0}ms", ms)
    } else if ms < 60_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else {
        let s = d.as_secs();
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
        }
    }
}

/// Formats a byte count with binary units: `25 MiB`, `1.4 GiB`, `512 B`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// A member ID as etcd prints it: 16 lowercase hex digits.
pub fn member_id(id: u64) -> String {
    format!("{id:016x}")
}

/// Parses a member ID given as hex (with or without leading zeros, optional `0x`).
pub fn parse_member_id(s: &str) -> Option<u64> {
    let t = s.trim().trim_start_matches("0x");
    if t.is_empty() || t.len() > 16 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(t, 16).ok()
}

/// A member ID as `etcdctl -w json` prints it: decimal.
pub fn parse_member_id_decimal(s: &str) -> Option<u64> {
    let t = s.trim();
    (!t.is_empty() && t.chars().all(|c| c.is_ascii_digit())).then(|| t.parse().ok()).flatten()
}

/// Parses a size as kubectl's quantities and etcd's docs write them, through `bytesize`: a
/// byte count, or a number with a binary unit `Ki`/`Mi`/`Gi`/`Ti` (`KiB`, … the same: powers of
/// 1024) or a decimal one `K`/`M`/`G`/`T` (`KB`, …: powers of 1000), as `8Gi` or `100MiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if !t.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return Err(format!("{s:?} is not a size such as 100Mi, 100MiB or 8Gi"));
    }
    t.parse::<bytesize::ByteSize>().map(|b| b.as_u64()).map_err(|_| {
        format!("{s:?}: not a size; use bytes or a number with Ki, Mi, Gi, Ti (powers of 1024) or K, M, G, T (of 1000)")
    })
}

/// Serde helper: a `Duration` as a string with units (`"3.214ms"`, `"1.5s"`).
pub mod duration_ms {
    use std::time::Duration;

    /// A duration as a number of milliseconds (three decimals): what every JSON and YAML
    /// document carries, in fields named `*_ms`.
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(ms(*d))
    }

    /// The milliseconds of `d`, rounded to microseconds.
    pub fn ms(d: Duration) -> f64 {
        (d.as_secs_f64() * 1e6).round() / 1e3
    }

    /// The same for an optional duration.
    pub mod option {
        use std::time::Duration;
        /// Serializes an optional duration as milliseconds (null when absent).
        pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_f64(super::ms(*d)),
                None => s.serialize_none(),
            }
        }
    }
}

/// Serializes a u64 as 16 hex digits.
pub fn ser_hex<S: serde::Serializer>(v: &u64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&member_id(*v))
}

/// Serializes an optional u64 as 16 hex digits.
pub fn ser_hex_opt<S: serde::Serializer>(v: &Option<u64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&member_id(*v)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_want_a_unit_and_some_time() {
        assert_eq!(parse_window("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_window("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_window("5").unwrap_err().contains("give a unit"));
        assert!(parse_window("0s").unwrap_err().contains("reads nothing"));
        assert!(parse_window("0").unwrap_err().contains("give a unit"));
        assert!(parse_window("-1h").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_wait("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("0"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_wait("1ms").is_err(), "a wait that is not zero still has the floor");
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1").is_err());
        for cannot_work in ["0", "0s", "1ns", "5ms"] {
            assert!(parse_duration(cannot_work).unwrap_err().contains("too short to work"), "{cannot_work}");
        }
        assert!(parse_duration("999999999999999999h").unwrap_err().contains("longer than a year"));
        assert!(parse_interval("0").is_err() && parse_interval("100ms").is_err());
        assert_eq!(parse_interval("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_member_id_decimal("8167322934525592410"), Some(8167322934525592410));
        assert_eq!(parse_member_id_decimal("7167fe"), None);
        // Go's forms, as kubectl and etcdctl take them.
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2h45m30.5s").unwrap(), Duration::from_millis(9930500));
        assert_eq!(parse_duration("15000us").unwrap(), Duration::from_millis(15));
        assert_eq!(parse_duration("15000µs").unwrap(), Duration::from_millis(15));
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit \"x\""));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("8Gi"), Ok(8 << 30));
        assert_eq!(parse_size("100MiB"), Ok(100 << 20));
        assert_eq!(parse_size("1.5Ki"), Ok(1536));
        assert_eq!(parse_size("2M"), Ok(2_000_000));
        assert_eq!(parse_size("2 GB"), Ok(2_000_000_000));
        for bad in ["lots", "-1", "", "5 parsecs"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids() {
        assert_eq!(member_id(0x8e9e05c52164694d), "8e9e05c52164694d");
        assert_eq!(member_id(1), "0000000000000001");
        assert_eq!(parse_member_id("8e9e05c52164694d"), Some(0x8e9e05c52164694d));
        assert_eq!(parse_member_id("node-1"), None);
    }

    #[test]
    fn bytes() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(25 * 1024 * 1024), "25.0 MiB");
        assert_eq!(format_bytes(2 * 1024 * 1024 * 1024), "2.0 GiB");
    }
}
