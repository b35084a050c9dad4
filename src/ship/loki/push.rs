//! One push request: entries grouped into streams by label set, gathered on the delivery
//! thread ([`Gathering`]), then sealed into a [`Push`] that a push worker encodes as Loki's
//! protobuf (snappy block format) or JSON and sends.
//!
//! Lines and metadata values live in one buffer per push, so gathering allocates per stream,
//! not per line, and the protobuf messages take slices of it. Must not: decide labels,
//! timestamps or what to cut (the output does), or talk HTTP.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use prost::bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::labels::{LabelKey, LabelSet, MAX_VALUE_BYTES, cut, push_quoted};
use crate::event::{Event, Timestamp};
use crate::ship::Receipt;
use crate::ship::logproto::{self, EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter};

/// Structured metadata logward adds itself: the line was cut at `max_line_size`.
pub const TRUNCATED: &str = "truncated";
/// Structured metadata logward adds itself: the event's own time, which Loki would have
/// refused (too old, or too far ahead); the entry carries its read time instead.
pub const ORIGINAL_TIMESTAMP: &str = "original_timestamp";

/// The names of structured metadata, by index: the configured ones, then logward's own.
#[derive(Debug, Clone)]
pub struct MetaNames {
    text: Vec<String>,
    bytes: Vec<Bytes>,
}

impl MetaNames {
    /// `configured` are Loki names, already valid.
    pub fn new(configured: impl IntoIterator<Item = String>) -> MetaNames {
        let text: Vec<String> = configured
            .into_iter()
            .chain([TRUNCATED.to_string(), ORIGINAL_TIMESTAMP.to_string()])
            .collect();
        let bytes = text.iter().map(|t| Bytes::from(t.clone())).collect();
        MetaNames { text, bytes }
    }

    /// The index of a name; logward's own come last.
    pub fn index(&self, name: &str) -> usize {
        self.text
            .iter()
            .position(|t| t == name)
            .unwrap_or(self.text.len())
    }
}

#[derive(Debug)]
struct Meta {
    name: usize,
    value: Range<usize>,
}

#[derive(Debug)]
struct Entry {
    ts: i64,
    line: Range<usize>,
    meta: Range<usize>,
}

#[derive(Debug)]
struct Stream {
    selector: String,
    labels: Vec<(String, String)>,
    entries: Vec<Entry>,
}

/// Adds structured metadata to the entry being gathered.
pub struct MetaWriter<'a> {
    text: &'a mut String,
    meta: &'a mut Vec<Meta>,
    start: usize,
}

impl MetaWriter<'_> {
    /// Adds `name` with the value `write` appends, cut at [`MAX_VALUE_BYTES`]; an empty value
    /// adds nothing, nor does a name the entry already has.
    pub fn add(&mut self, name: usize, write: impl FnOnce(&mut String)) {
        if self.has(name) {
            return;
        }
        let start = self.text.len();
        write(self.text);
        let end = start + cut(&self.text[start..], MAX_VALUE_BYTES).len();
        self.text.truncate(end);
        if end > start {
            self.meta.push(Meta {
                name,
                value: start..end,
            });
        }
    }

    pub fn has(&self, name: usize) -> bool {
        self.meta[self.start..].iter().any(|m| m.name == name)
    }
}

/// The push being gathered.
#[derive(Debug, Default)]
pub struct Gathering {
    text: String,
    streams: Vec<Stream>,
    index: HashMap<String, usize>,
    meta: Vec<Meta>,
    entries: usize,
    receipts: Vec<Receipt>,
    started: Option<Instant>,
    oldest_read: Option<Timestamp>,
    /// The stream of each label key met, with the `Arc`s whose addresses the key holds (kept
    /// alive, so that no other can take them while the key is here).
    by_key: HashMap<LabelKey, KeyedStream>,
}

#[derive(Debug)]
struct KeyedStream {
    stream: usize,
    _labels: Arc<std::collections::BTreeMap<String, String>>,
    _source: Arc<str>,
}

impl Gathering {
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Bytes of lines and metadata values gathered.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// The stream of the events with label key `key`, if the push has it.
    pub fn stream_of(&self, key: &LabelKey) -> Option<usize> {
        self.by_key.get(key).map(|k| k.stream)
    }

    /// Whether the push has a stream with the labels of `set`.
    pub fn has_stream(&self, set: &LabelSet) -> bool {
        self.index.contains_key(set.selector())
    }

    /// The stream of `set` (made now if new), which `ev`'s label key `key` leads to from now on.
    pub fn open_stream(&mut self, key: &LabelKey, ev: &Event, set: &LabelSet) -> usize {
        let stream = match self.index.get(set.selector()) {
            Some(&i) => i,
            None => {
                self.streams.push(Stream {
                    selector: set.selector().to_string(),
                    labels: set
                        .pairs()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect(),
                    entries: Vec::new(),
                });
                self.index
                    .insert(set.selector().to_string(), self.streams.len() - 1);
                self.streams.len() - 1
            }
        };
        self.by_key.insert(
            key.clone(),
            KeyedStream {
                stream,
                _labels: ev.labels.clone(),
                _source: ev.source.clone(),
            },
        );
        stream
    }

    /// When the first entry came.
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// A share of a batch whose events this push holds.
    pub fn hold(&mut self, receipt: Receipt) {
        self.receipts.push(receipt);
    }

    /// Adds an entry to `stream` (from [`Gathering::stream_of`] or [`Gathering::open_stream`]);
    /// `meta` adds its structured metadata.
    pub fn add(
        &mut self,
        stream: usize,
        ts: i64,
        read_at: Timestamp,
        line: &str,
        meta: impl FnOnce(&mut MetaWriter<'_>),
    ) {
        let start = self.text.len();
        self.text.push_str(line);
        let line = start..self.text.len();
        let first_meta = self.meta.len();
        meta(&mut MetaWriter {
            text: &mut self.text,
            meta: &mut self.meta,
            start: first_meta,
        });
        self.streams[stream].entries.push(Entry {
            ts,
            line,
            meta: first_meta..self.meta.len(),
        });
        self.entries += 1;
        self.started.get_or_insert_with(Instant::now);
        self.oldest_read = Some(self.oldest_read.map_or(read_at, |o| o.min(read_at)));
    }

    /// Takes what was gathered as the push `id`; the gathering starts again empty.
    pub fn seal(&mut self, id: u64) -> Push {
        let g = std::mem::take(self);
        Push {
            id,
            text: Bytes::from(g.text),
            streams: g.streams,
            meta: g.meta.into(),
            entries: g.entries,
            receipts: g.receipts,
            oldest_read: g.oldest_read.unwrap_or_else(Timestamp::now),
        }
    }
}

/// A push on its way: sent, retried, split or dropped as Loki answers.
#[derive(Debug)]
pub struct Push {
    /// Both halves of a split push keep the id.
    id: u64,
    text: Bytes,
    streams: Vec<Stream>,
    /// Shared by the halves of a split push; each reads the ranges of its own entries.
    meta: Arc<[Meta]>,
    entries: usize,
    receipts: Vec<Receipt>,
    oldest_read: Timestamp,
}

impl Push {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// When the earliest event of the push was read.
    pub fn oldest_read(&self) -> Timestamp {
        self.oldest_read
    }

    pub fn has_metadata(&self) -> bool {
        !self.meta.is_empty()
    }

    /// Loki took the entries, or they were dropped on purpose: acknowledges the push's share
    /// of each batch in it.
    pub fn accept(self) {
        for r in self.receipts {
            r.accept();
        }
    }

    /// Two pushes of about half the entries each (whole streams when there are several),
    /// both holding the batches' shares; the push itself back when it has a single entry.
    pub fn split(mut self) -> Result<(Push, Push), Push> {
        let second: Vec<Stream> = if self.streams.len() > 1 {
            self.streams.split_off(self.streams.len() / 2)
        } else {
            let Some(only) = self.streams.first_mut() else {
                return Err(self);
            };
            if only.entries.len() < 2 {
                return Err(self);
            }
            let rest = only.entries.split_off(only.entries.len() / 2);
            vec![Stream {
                selector: only.selector.clone(),
                labels: only.labels.clone(),
                entries: rest,
            }]
        };
        let count = |s: &[Stream]| s.iter().map(|s| s.entries.len()).sum::<usize>();
        let other = Push {
            id: self.id,
            text: self.text.clone(),
            entries: count(&second),
            streams: second,
            meta: self.meta.clone(),
            receipts: self.receipts.iter().map(Receipt::share).collect(),
            oldest_read: self.oldest_read,
        };
        self.entries = count(&self.streams);
        Ok((self, other))
    }

    fn str_at(&self, r: &Range<usize>) -> Cow<'_, str> {
        // Everything in the buffer was written from `str`s.
        String::from_utf8_lossy(&self.text[r.clone()])
    }

    /// The line of `e` with its metadata after it as logfmt (`k=v`, quoted when needed):
    /// for a Loki that refuses structured metadata (2.x).
    fn logfmt_line(&self, e: &Entry, names: &MetaNames) -> String {
        let mut line = self.str_at(&e.line).into_owned();
        for m in &self.meta[e.meta.clone()] {
            let value = self.str_at(&m.value);
            line.push(' ');
            line.push_str(&names.text[m.name]);
            line.push('=');
            let plain = !value.is_empty()
                && !value
                    .chars()
                    .any(|c| c == ' ' || c == '=' || c == '"' || c.is_control());
            if plain {
                line.push_str(&value);
            } else {
                push_quoted(&mut line, &value);
            }
        }
        line
    }

    /// The body for `Content-Type: application/x-protobuf`: the `PushRequest`, snappy
    /// block-compressed. With `logfmt`, metadata is appended to lines instead.
    pub fn protobuf(&self, names: &MetaNames, logfmt: bool) -> Result<Vec<u8>, snap::Error> {
        let streams = self
            .streams
            .iter()
            .map(|s| StreamAdapter {
                labels: s.selector.clone(),
                entries: s
                    .entries
                    .iter()
                    .map(|e| self.entry(e, names, logfmt))
                    .collect(),
            })
            .collect();
        let raw = PushRequest { streams }.encode_to_vec();
        snap::raw::Encoder::new().compress_vec(&raw)
    }

    fn entry(&self, e: &Entry, names: &MetaNames, logfmt: bool) -> EntryAdapter {
        let meta = &self.meta[e.meta.clone()];
        let timestamp = Some(logproto::Timestamp::from_nanos(e.ts));
        if logfmt && !meta.is_empty() {
            return EntryAdapter {
                timestamp,
                line: Bytes::from(self.logfmt_line(e, names)),
                structured_metadata: Vec::new(),
            };
        }
        EntryAdapter {
            timestamp,
            line: self.text.slice(e.line.clone()),
            structured_metadata: meta
                .iter()
                .map(|m| LabelPairAdapter {
                    name: names.bytes[m.name].clone(),
                    value: self.text.slice(m.value.clone()),
                })
                .collect(),
        }
    }

    /// The body for `Content-Type: application/json` (Loki's push API in JSON).
    pub fn json(&self, names: &MetaNames, logfmt: bool) -> Vec<u8> {
        let body = JsonBody {
            push: self,
            names,
            logfmt,
        };
        // Serializing plain data into a Vec cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// `{"streams":[{"stream":{labels},"values":[["<ns>","<line>",{metadata}],...]},...]}`
struct JsonBody<'a> {
    push: &'a Push,
    names: &'a MetaNames,
    logfmt: bool,
}

impl Serialize for JsonBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Streams<'a>(&'a JsonBody<'a>);
        struct OneStream<'a>(&'a JsonBody<'a>, &'a Stream);
        struct Labels<'a>(&'a [(String, String)]);
        struct Values<'a>(&'a JsonBody<'a>, &'a [Entry]);
        struct Value<'a>(&'a JsonBody<'a>, &'a Entry);
        struct Metadata<'a>(&'a JsonBody<'a>, &'a [Meta]);
        /// Nanoseconds as a string: Loki refuses a number.
        struct Nanos(i64);
        impl Serialize for Nanos {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }
        impl Serialize for Streams<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.push.streams.iter().map(|st| OneStream(self.0, st)))
            }
        }
        impl Serialize for OneStream<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("stream", &Labels(&self.1.labels))?;
                m.serialize_entry("values", &Values(self.0, &self.1.entries))?;
                m.end()
            }
        }
        impl Serialize for Labels<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        impl Serialize for Values<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.1.iter().map(|e| Value(self.0, e)))
            }
        }
        impl Serialize for Value<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let (body, e) = (self.0, self.1);
                let meta = &body.push.meta[e.meta.clone()];
                let with_meta = !meta.is_empty() && !body.logfmt;
                let mut seq = s.serialize_seq(Some(if with_meta { 3 } else { 2 }))?;
                seq.serialize_element(&Nanos(e.ts))?;
                if body.logfmt && !meta.is_empty() {
                    seq.serialize_element(&body.push.logfmt_line(e, body.names))?;
                } else {
                    seq.serialize_element(&body.push.str_at(&e.line))?;
                }
                if with_meta {
                    seq.serialize_element(&Metadata(body, meta))?;
                }
                seq.end()
            }
        }
        impl Serialize for Metadata<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let (body, meta) = (self.0, self.1);
                s.collect_map(
                    meta.iter()
                        .map(|m| (body.names.text[m.name].as_str(), body.push.str_at(&m.value))),
                )
            }
        }
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("streams", &Streams(self))?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Origin, Record};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn names() -> MetaNames {
        MetaNames::new(["ci_run_id".to_string()])
    }

    /// The stream of events whose source `s` has the static label `job`; a new event (and
    /// `Arc`) each time, so a second call finds the stream by its labels, not its key.
    fn stream(g: &mut Gathering, job: &str) -> usize {
        let labels = BTreeMap::from([("job".to_string(), job.to_string())]);
        let origin = Origin::new("s".into(), None, Arc::new(labels));
        let ev = Event::from_record(Record::text(0, String::new()), &origin, Timestamp::now());
        let mut set = LabelSet::new("h".into());
        set.set_event(&ev, &[]);
        let mut key = LabelKey::default();
        key.set(&ev, &[]);
        assert_eq!(g.stream_of(&key), None);
        let stream = g.open_stream(&key, &ev, &set);
        assert_eq!(g.stream_of(&key), Some(stream));
        stream
    }

    fn gathered() -> Push {
        let mut g = Gathering::default();
        let names = names();
        let read = Timestamp::from_nanos(5);
        let a = stream(&mut g, "a");
        g.add(a, 1_700_000_000_123_456_789, read, "first line", |m| {
            m.add(names.index("ci_run_id"), |o| o.push_str("4711"))
        });
        let b = stream(&mut g, "b");
        g.add(b, 2, read, "second", |_| {});
        let a = stream(&mut g, "a");
        g.add(a, 3, read, "third has \"quotes\"", |m| {
            m.add(names.index(TRUNCATED), |o| o.push_str("true"));
            m.add(names.index(TRUNCATED), |o| o.push_str("twice"));
            m.add(names.index("ci_run_id"), |_| {});
        });
        g.seal(1)
    }

    #[test]
    fn protobuf_body_is_a_snappy_block_of_the_push_request() {
        let push = gathered();
        let body = push.protobuf(&names(), false).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = PushRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.streams.len(), 2);
        let a = &req.streams[0];
        assert_eq!(a.labels, "{host=\"h\", job=\"a\", source=\"s\"}");
        assert_eq!(
            a.entries.len(),
            2,
            "entries of a stream stay together, in order"
        );
        assert_eq!(
            a.entries[0].timestamp,
            Some(logproto::Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_456_789
            })
        );
        assert_eq!(&a.entries[0].line[..], b"first line");
        let meta: Vec<(&[u8], &[u8])> = a.entries[1]
            .structured_metadata
            .iter()
            .map(|p| (&p.name[..], &p.value[..]))
            .collect();
        assert_eq!(
            meta,
            [(&b"truncated"[..], &b"true"[..])],
            "a name once, no empty value"
        );
        assert_eq!(&req.streams[1].entries[0].line[..], b"second");
    }

    #[test]
    fn json_body_has_string_nanoseconds_and_metadata_objects() {
        let push = gathered();
        let v: serde_json::Value = serde_json::from_slice(&push.json(&names(), false)).unwrap();
        assert_eq!(
            v,
            json!({"streams": [
                {"stream": {"host": "h", "job": "a", "source": "s"}, "values": [
                    ["1700000000123456789", "first line", {"ci_run_id": "4711"}],
                    ["3", "third has \"quotes\"", {"truncated": "true"}]]},
                {"stream": {"host": "h", "job": "b", "source": "s"}, "values": [["2", "second"]]}
            ]})
        );
    }

    #[test]
    fn refused_metadata_goes_to_the_line_as_logfmt() {
        let push = gathered();
        let v: serde_json::Value = serde_json::from_slice(&push.json(&names(), true)).unwrap();
        assert_eq!(
            v["streams"][0]["values"][0],
            json!(["1700000000123456789", "first line ci_run_id=4711"])
        );
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&push.protobuf(&names(), true).unwrap())
            .unwrap();
        let req = PushRequest::decode(raw.as_slice()).unwrap();
        assert!(req.streams[0].entries[1].structured_metadata.is_empty());
        assert_eq!(
            &req.streams[0].entries[1].line[..],
            b"third has \"quotes\" truncated=true"
        );
    }

    #[test]
    fn a_split_push_keeps_every_entry_once_and_every_share() {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut push = gathered();
        push.receipts.push(Receipt::new({
            let done = done.clone();
            move || done.store(true, std::sync::atomic::Ordering::SeqCst)
        }));
        let (a, b) = push.split().unwrap();
        assert_eq!((a.entries(), b.entries()), (2, 1));
        let (a1, a2) = a.split().unwrap();
        assert_eq!((a1.entries(), a2.entries()), (1, 1));
        let a1 = a1.split().unwrap_err();
        let body: serde_json::Value = serde_json::from_slice(&a2.json(&names(), false)).unwrap();
        assert_eq!(
            body["streams"][0]["values"][0][2],
            json!({"truncated": "true"})
        );
        for p in [a1, a2] {
            p.accept();
        }
        assert!(!done.load(std::sync::atomic::Ordering::SeqCst));
        b.accept();
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    }
}
