//! The event: one record of a log stream and everything logward learns about it.
//!
//! Every key of the event shape (SPEC §4) lives here. A key that a stage has not
//! filled stays `None` and is written as `null`: nothing is made up. Serialization
//! to NDJSON is the only formatting done here.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::correlate::PathFields;

/// A point in time, nanoseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(now.as_nanos()).unwrap_or(i64::MAX))
    }

    /// Parses RFC 3339 with any fraction (`2016-10-06T00:17:09.669794202Z`, `+02:00` offsets).
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
        t.timestamp_nanos_opt().map(Timestamp)
    }

    pub fn from_nanos(nanos: i64) -> Timestamp {
        Timestamp(nanos)
    }

    pub fn as_nanos(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = chrono::DateTime::from_timestamp_nanos(self.0);
        f.write_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read back from RFC 3339, as written: persisted state (window snapshots) holds timestamps.
impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time")))
    }
}

/// A normalized severity, ordered from least to most severe.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Notice,
    Warn,
    Error,
    Critical,
}

/// A stable 64-bit identity of "the same problem", written as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u64);

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:016x}", self.0))
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Fingerprint, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        u64::from_str_radix(&text, 16)
            .map(Fingerprint)
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a hex fingerprint")))
    }
}

/// Where an event came from: shared by every event of a source or file.
#[derive(Debug, Clone)]
pub struct Origin {
    pub source: Arc<str>,
    pub path: Option<Arc<str>>,
    pub labels: Arc<BTreeMap<String, String>>,
    /// What the path says about the events (run id, Kubernetes metadata).
    pub path_fields: Arc<PathFields>,
}

impl Origin {
    /// An origin with nothing learnt from its path.
    pub fn new(
        source: Arc<str>,
        path: Option<Arc<str>>,
        labels: Arc<BTreeMap<String, String>>,
    ) -> Origin {
        Origin {
            source,
            path,
            labels,
            path_fields: Arc::default(),
        }
    }
}

/// One record as decoded from a stream, before any extraction.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Byte offset of the record's first line in its file (or stream).
    pub offset: u64,
    pub line: String,
    /// The time the producer put on the record (CRI, docker), if any.
    pub ts: Option<Timestamp>,
    pub fields: Map<String, Value>,
    /// The parsed object of a `json` record, kept so that extraction does not parse it again.
    pub json: Option<Map<String, Value>>,
}

impl Record {
    pub fn text(offset: u64, line: String) -> Record {
        Record {
            offset,
            line,
            ts: None,
            fields: Map::new(),
            json: None,
        }
    }
}

/// The keys of an event as written to NDJSON (SPEC §4), in order, before `labels`.
pub const KEYS: [&str; 14] = [
    "ts",
    "source",
    "path",
    "offset",
    "line",
    "level",
    "service",
    "ci_run_id",
    "pattern",
    "matched",
    "message",
    "template",
    "fingerprint",
    "fields",
];

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub ts: Timestamp,
    pub source: Arc<str>,
    pub path: Option<Arc<str>>,
    pub offset: u64,
    pub line: String,
    pub level: Option<Level>,
    pub service: Option<String>,
    pub ci_run_id: Option<String>,
    pub pattern: Option<Arc<str>>,
    pub matched: bool,
    pub message: Option<String>,
    pub template: Option<String>,
    pub fingerprint: Option<Fingerprint>,
    pub fields: Map<String, Value>,
    /// The source's static labels.
    pub labels: Arc<BTreeMap<String, String>>,
    /// When the record was read: `ts` unless the record or a pattern gave its own time.
    #[serde(skip)]
    pub read_at: Timestamp,
    #[serde(skip)]
    pub json: Option<Map<String, Value>>,
    /// Set when the event matched routes: they decide in the windows.
    #[serde(skip)]
    pub routed: Option<Box<Routed>>,
}

/// What an event that matched routes carries from its stream to the windows.
#[derive(Debug, Clone, Default)]
pub struct Routed {
    /// Indices of the matching routes, in config order.
    pub routes: Vec<usize>,
    /// The lines before the event in its stream, oldest first.
    pub context: Vec<String>,
}

impl Event {
    /// An event straight from a decoded record: what no stage has filled is `None`.
    pub fn from_record(record: Record, origin: &Origin, read_at: Timestamp) -> Event {
        Event {
            ts: record.ts.unwrap_or(read_at),
            source: origin.source.clone(),
            path: origin.path.clone(),
            offset: record.offset,
            line: record.line,
            level: None,
            service: None,
            ci_run_id: None,
            pattern: None,
            matched: false,
            message: None,
            template: None,
            fingerprint: None,
            fields: record.fields,
            labels: origin.labels.clone(),
            read_at,
            json: record.json,
            routed: None,
        }
    }

    /// Appends the event as one NDJSON line.
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        // Serializing plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, self);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_carries_every_key_of_the_event_shape() {
        let origin = Origin::new("s".into(), Some("/a.log".into()), Arc::default());
        let ev = Event::from_record(
            Record::text(7, "hello".into()),
            &origin,
            Timestamp(1_700_000_000_123_000_000),
        );
        let mut out = Vec::new();
        ev.write_ndjson(&mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        for key in KEYS {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["ts"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["level"], Value::Null);
        assert_eq!(v["offset"], 7);
    }

    #[test]
    fn fingerprint_is_sixteen_lowercase_hex_digits() {
        assert_eq!(
            serde_json::to_string(&Fingerprint(0xAB)).unwrap(),
            "\"00000000000000ab\""
        );
    }

    #[test]
    fn timestamp_level_and_fingerprint_read_back_what_they_write() {
        let t = Timestamp(1_700_000_000_123_456_789);
        let text = serde_json::to_string(&(t, Level::Warn, Fingerprint(0xAB))).unwrap();
        let back: (Timestamp, Level, Fingerprint) = serde_json::from_str(&text).unwrap();
        assert_eq!(back, (t, Level::Warn, Fingerprint(0xAB)));
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn rfc3339_nanoseconds_round_trip() {
        let t = Timestamp::parse_rfc3339("2016-10-06T00:17:09.669794202Z").unwrap();
        assert_eq!(t.to_string(), "2016-10-06T00:17:09.669794202Z");
    }
}
