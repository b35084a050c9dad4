//! Times and durations written for people: the CLI's tables and the status page.
//! Machines get RFC 3339 (`Timestamp`'s `Display`); nothing here is parsed back.

use crate::event::Timestamp;

/// A time to the second, UTC: `2025-06-01T18:00:00Z`.
pub fn seconds(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_nanos(t.as_nanos())
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `to - from` for people: `42s`, `5m 3s`, `1h 59m`, `3d 4h` (`0s` when `to` is earlier).
pub fn remaining(to: Timestamp, from: Timestamp) -> String {
    let s =
        u64::try_from(to.as_nanos().saturating_sub(from.as_nanos()) / 1_000_000_000).unwrap_or(0);
    let (d, h, m) = (s / 86400, s % 86400 / 3600, s % 3600 / 60);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{m}m {}s", s % 60),
        3600..86400 => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// A byte count for people: `812 B`, `4.2 KiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_read_at_a_glance() {
        let t = |s: i64| Timestamp::from_nanos(s * 1_000_000_000);
        assert_eq!(remaining(t(42), t(0)), "42s");
        assert_eq!(remaining(t(303), t(0)), "5m 3s");
        assert_eq!(remaining(t(7140), t(0)), "1h 59m");
        assert_eq!(remaining(t(0), t(10)), "0s");
        assert_eq!(seconds(t(1_748_800_800)), "2025-06-01T18:00:00Z");
    }
}
