//! Parsers for the unit-carrying values users write in config files: durations
//! (`250ms`, `10m`), byte sizes (`1MiB`, `512KiB`) and rates (`20/min`).
//!
//! Each parser returns a message that says what a valid value looks like, so
//! the config layer can attach it to the `file:line:col` of the bad value.

use std::num::NonZeroU32;
use std::time::Duration;

/// Parses a human duration such as `250ms`, `1s`, `10m` or `1h 30m`.
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write e.g. \"250ms\", \"10s\", \"5m\" or \"1h\"")
    })
}

/// Parses a byte size such as `1MiB`, `512KiB`, `64kB` or a plain number of bytes.
pub fn byte_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| {
            format!("`{text}` is not a size; write e.g. \"1MiB\", \"512KiB\" or \"65536\"")
        })
}

/// A rate limit: at most `count` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl std::fmt::Display for Rate {
    /// `20/1m`, `5/1s`: a form [`rate`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

/// Parses a rate such as `20/min`, `5/s`, `100/h` or `10/30s`.
pub fn rate(text: &str) -> Result<Rate, String> {
    let fix = || {
        format!(
            "`{text}` is not a rate; write COUNT/PERIOD, e.g. \"20/min\", \"5/s\" or \"100/1h\""
        )
    };
    let (count, per) = text.trim().split_once('/').ok_or_else(fix)?;
    let count: NonZeroU32 = count.trim().parse().map_err(|_| fix())?;
    let per = match per.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        other => humantime::parse_duration(other).map_err(|_| fix())?,
    };
    if per.is_zero() {
        return Err(fix());
    }
    Ok(Rate { count, per })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_human_units() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(duration("ten seconds").unwrap_err().contains("\"250ms\""));
    }

    #[test]
    fn sizes_accept_binary_and_decimal_units() {
        assert_eq!(byte_size("1MiB"), Ok(1 << 20));
        assert_eq!(byte_size("512 KiB"), Ok(512 << 10));
        assert_eq!(byte_size("1000"), Ok(1000));
        assert!(byte_size("big").is_err());
    }

    #[test]
    fn rates_name_count_and_period() {
        let r = rate("20/min").unwrap();
        assert_eq!((r.count.get(), r.per), (20, Duration::from_secs(60)));
        assert_eq!(rate("10/30s").unwrap().per, Duration::from_secs(30));
        assert!(rate("0/min").is_err());
        assert!(rate("20 per minute").is_err());
    }

    #[test]
    fn a_rate_prints_as_it_reads() {
        for text in ["20/min", "5/s", "10/30s", "100/1h 30m"] {
            let r = rate(text).unwrap();
            assert_eq!(rate(&r.to_string()), Ok(r), "{text} -> {r}");
        }
        assert_eq!(rate("20/min").unwrap().to_string(), "20/1m");
    }
}
