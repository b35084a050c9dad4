//! The fingerprint stage: an event's `template` (its message with the variable
//! parts masked) and `fingerprint` (a stable 64-bit hash of the values of the
//! pattern's `fingerprint` keys), so that later stages can count and
//! deduplicate occurrences of one problem.
//!
//! - `mask`: message → template, one pass, typed placeholders;
//! - `drain`: templates → clusters with stable keys, for variable words masking
//!   cannot know (bounded, LRU, saved across restarts);
//! - `trace`: a multiline stack trace → exception type and top frames;
//! - here: the hash and its byte encoding, and `Fingerprinter`, which ties them
//!   together for one event.
//!
//! This module is synchronous logic only. It must not own windows, counts or
//! routing (later stages), do I/O (the caller saves and loads the miner's
//! snapshot), or read configuration files. docs/fingerprints.md states the
//! algorithm and its test vectors; changing what a fingerprint is computed
//! from, or how, is a breaking change: every dedup group, silence and saved
//! notification state keyed by fingerprints would be orphaned.
//!
//! One miner is shared by every source thread behind a `Mutex`
//! (`Fingerprinter` is cheap to clone, one per thread, sharing it). A cluster's
//! key is the first line that created it, so per-thread miners would give the
//! same message different keys, and so different fingerprints, depending on
//! which source saw which variant first; one miner gives every thread the same
//! answer and one snapshot to save. The lock is held for a hash lookup (a scan
//! of one leaf for a new variant): far shorter than reading and extracting the
//! line, so two source threads on two cores rarely wait for it.

pub mod drain;
pub mod mask;
pub mod trace;

pub use drain::{Mined, Miner, MinerConfig, MinerSnapshot, SavedCluster};
pub use trace::{TraceKind, TraceSignature, signature};

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use xxhash_rust::xxh3::{Xxh3Default, xxh3_64};

use crate::event::{Event, Fingerprint, Level};
use crate::pattern::level_name;

/// The keys fingerprinted when a pattern does not list its own (and for events no pattern matched).
pub const DEFAULT_KEYS: [&str; 3] = ["pattern", "service", "template"];

/// The stable hash of `(key, value)` pairs, in the order given; `None` is an
/// absent value, which differs from the empty string.
///
/// xxh3-64, seed 0, over, for each pair: the key's length in bytes (u64
/// little-endian), the key's bytes, then `0x00` for an absent value, or `0x01`,
/// the value's length (u64 little-endian) and its bytes. Lengths rather than
/// separators, so that no value, whatever bytes it holds, can shift a boundary.
pub fn fingerprint<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Fingerprint {
    let mut h = Xxh3Default::new();
    for (key, value) in pairs {
        write_pair(&mut h, key, value);
    }
    Fingerprint(h.digest())
}

/// The encoding, written once for both ways of hashing it: streamed (no
/// buffer at hand) or collected in a reused buffer and hashed in one call,
/// which is faster for the short inputs of a log line.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Xxh3Default {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

fn write_pair(out: &mut impl Sink, key: &str, value: Option<&str>) {
    out.put(&(key.len() as u64).to_le_bytes());
    out.put(key.as_bytes());
    match value {
        None => out.put(&[0]),
        Some(v) => {
            out.put(&[1]);
            out.put(&(v.len() as u64).to_le_bytes());
            out.put(v.as_bytes());
        }
    }
}

/// What fingerprinting one event needs to know, borrowed from the event and its pattern.
#[derive(Debug, Clone, Copy)]
pub struct FingerprintInput<'a> {
    /// The pattern's `fingerprint` list; `None` (no pattern matched) means `DEFAULT_KEYS`.
    pub keys: Option<&'a [String]>,
    pub source: &'a str,
    pub pattern: Option<&'a str>,
    pub service: Option<&'a str>,
    pub level: Option<Level>,
    pub ci_run_id: Option<&'a str>,
    /// The whole record; multiline records (lines joined with `\n`) are tried as stack traces.
    pub line: &'a str,
    /// What is masked into the template; the line when `None`.
    pub message: Option<&'a str>,
    pub fields: &'a Map<String, Value>,
    /// Whether the template miner runs (a pattern may opt out).
    pub mine: bool,
}

impl<'a> FingerprintInput<'a> {
    /// The input for an event after extraction, with the miner on.
    pub fn from_event(event: &'a Event, keys: Option<&'a [String]>) -> FingerprintInput<'a> {
        FingerprintInput {
            keys,
            source: &event.source,
            pattern: event.pattern.as_deref(),
            service: event.service.as_deref(),
            level: event.level,
            ci_run_id: event.ci_run_id.as_deref(),
            line: &event.line,
            message: event.message.as_deref(),
            fields: &event.fields,
            mine: true,
        }
    }
}

/// Template and fingerprint for one event at a time; one per source thread,
/// all sharing one miner.
#[derive(Debug, Clone, Default)]
pub struct Fingerprinter {
    miner: Option<Arc<Mutex<Miner>>>,
    masked: String,
    /// A non-string JSON field value, written out to be hashed.
    value: String,
    /// The encoded keys and values of the event being hashed.
    encoded: Vec<u8>,
}

impl Fingerprinter {
    /// `None`: templates are masked messages only.
    pub fn new(miner: Option<Arc<Mutex<Miner>>>) -> Fingerprinter {
        Fingerprinter {
            miner,
            masked: String::new(),
            value: String::new(),
            encoded: Vec::new(),
        }
    }

    /// The shared miner, for saving its snapshot and reading its eviction count.
    pub fn miner(&self) -> Option<&Arc<Mutex<Miner>>> {
        self.miner.as_ref()
    }

    /// The event's template and fingerprint. The `template` key hashes the
    /// template's stable form: a trace's signature key, else the miner
    /// cluster's key (the masked line that created the cluster), else the
    /// masked message. The returned template is what the event shows: for a
    /// mined line, the cluster's current template with `<*>`.
    pub fn apply(&mut self, input: FingerprintInput<'_>) -> (String, Fingerprint) {
        let trace = match input.line.contains('\n') {
            true => trace::signature(input.line),
            false => None,
        };
        let (template, key) = match trace {
            Some(sig) => (sig.key(), None),
            None => {
                self.masked.clear();
                mask::mask(input.message.unwrap_or(input.line), &mut self.masked);
                match self.mine(&input) {
                    Some(m) => (m.template.to_string(), Some(m.key)),
                    None => (self.masked.clone(), None),
                }
            }
        };
        let stable = key.as_deref().unwrap_or(&template);
        let mut encoded = std::mem::take(&mut self.encoded);
        encoded.clear();
        match input.keys {
            Some(keys) => keys
                .iter()
                .for_each(|k| self.write_key(&mut encoded, k, &input, stable)),
            None => DEFAULT_KEYS
                .iter()
                .for_each(|k| self.write_key(&mut encoded, k, &input, stable)),
        }
        let fingerprint = Fingerprint(xxh3_64(&encoded));
        self.encoded = encoded;
        (template, fingerprint)
    }

    fn mine(&self, input: &FingerprintInput<'_>) -> Option<Mined> {
        let miner = self.miner.as_ref().filter(|_| input.mine)?;
        // A miner poisoned by a panic in another thread may be half updated:
        // templates fall back to masked messages rather than every source
        // thread panicking in turn.
        let mut miner = miner.lock().ok()?;
        miner.add(input.pattern.unwrap_or(""), &self.masked)
    }

    fn write_key(
        &mut self,
        out: &mut Vec<u8>,
        key: &str,
        input: &FingerprintInput<'_>,
        template: &str,
    ) {
        let value = match key {
            "template" => Some(template),
            "pattern" => input.pattern,
            "service" => input.service,
            "level" => input.level.map(level_name),
            "message" => input.message,
            "ci_run_id" => input.ci_run_id,
            "source" => Some(input.source),
            _ => match key
                .strip_prefix("fields.")
                .and_then(|f| input.fields.get(f))
            {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(other) => {
                    self.value.clear();
                    let _ = write!(self.value, "{other}"); // JSON text: cannot fail into a String
                    Some(self.value.as_str())
                }
            },
        };
        write_pair(out, key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = include_str!("../../docs/fingerprints.md");

    fn input<'a>(message: &'a str, fields: &'a Map<String, Value>) -> FingerprintInput<'a> {
        FingerprintInput {
            keys: None,
            source: "ci",
            pattern: Some("app.error"),
            service: Some("build-svc"),
            level: Some(Level::Error),
            ci_run_id: Some("123456"),
            line: message,
            message: Some(message),
            fields,
            mine: true,
        }
    }

    fn shared_miner() -> Fingerprinter {
        Fingerprinter::new(Some(Arc::new(Mutex::new(Miner::new(
            MinerConfig::default(),
        )))))
    }

    /// The rows of the doc's table whose first cell starts with `prefix`, as (cells...).
    fn doc_rows(prefix: &str) -> Vec<Vec<&'static str>> {
        DOC.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| {
                l.trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().trim_matches('`'))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn fingerprint_test_vectors_are_stable() {
        let rows = doc_rows("| `[");
        assert!(
            rows.len() >= 8,
            "docs/fingerprints.md lost its test vectors"
        );
        for row in rows {
            let pairs: Vec<(String, Option<String>)> = serde_json::from_str(row[0])
                .unwrap_or_else(|e| panic!("bad vector {}: {e}", row[0]));
            let got = fingerprint(pairs.iter().map(|(k, v)| (k.as_str(), v.as_deref())));
            assert_eq!(format!("{:016x}", got.0), row[1], "vector {}", row[0]);
        }
    }

    #[test]
    fn the_documented_masking_examples_hold() {
        let rows = doc_rows("| `<");
        assert!(
            rows.len() >= 10,
            "docs/fingerprints.md lost its masking table"
        );
        for row in rows {
            // | `<placeholder>` | what | `example` | `template` |
            assert_eq!(mask::template(row[2]), row[3], "{}", row[0]);
        }
    }

    #[test]
    fn different_numbers_same_fingerprint() {
        let fields = Map::new();
        let mut f = Fingerprinter::new(None);
        let a = f.apply(input(
            "connection to 10.1.2.3:5432 refused after 3 attempts",
            &fields,
        ));
        let b = f.apply(input(
            "connection to 10.9.8.7:6379 refused after 5 attempts",
            &fields,
        ));
        assert_eq!(a.0, "connection to <ip> refused after <num> attempts");
        assert_eq!(a, b);
    }

    #[test]
    fn different_messages_different_fingerprints() {
        let fields = Map::new();
        let mut f = shared_miner();
        let messages = [
            "connection to 10.1.2.3:5432 refused after 3 attempts",
            "connection to 10.1.2.3:5432 reset by peer",
            "disk /dev/sda1 is full",
            "cache miss key=sha256:00ab12cd34ef5678 size=42",
            "cache hit key=sha256:00ab12cd34ef5678 size=42",
        ];
        let fps: Vec<Fingerprint> = messages
            .iter()
            .map(|m| f.apply(input(m, &fields)).1)
            .collect();
        for (i, a) in fps.iter().enumerate() {
            for b in &fps[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn a_mined_line_keeps_the_fingerprint_of_its_first_occurrence() {
        let fields = Map::new();
        let mut f = shared_miner();
        let (t1, fp1) = f.apply(input("session of user alice expired", &fields));
        let (t2, fp2) = f.apply(input("session of user bob expired", &fields));
        let (_, fp3) = f.apply(input("session of user alice expired", &fields));
        assert_eq!(t1, "session of user alice expired");
        assert_eq!(t2, "session of user <*> expired");
        assert_eq!((fp1, fp1), (fp2, fp3));
        // The fingerprint is that of the first line's template, whatever the cluster shows.
        let direct = fingerprint([
            ("pattern", Some("app.error")),
            ("service", Some("build-svc")),
            ("template", Some("session of user alice expired")),
        ]);
        assert_eq!(fp1, direct);
    }

    #[test]
    fn two_threads_sharing_a_miner_agree() {
        let fields = Map::new();
        let mut a = shared_miner();
        let mut b = a.clone();
        let (_, first) = a.apply(input("job of team red finished", &fields));
        let (_, second) = b.apply(input("job of team blue finished", &fields));
        assert_eq!(first, second);
    }

    #[test]
    fn a_pattern_that_opts_out_of_mining_gets_the_masked_message() {
        let fields = Map::new();
        let mut f = shared_miner();
        f.apply(input("session of user alice expired", &fields));
        let (t, _) = f.apply(FingerprintInput {
            mine: false,
            ..input("session of user bob expired", &fields)
        });
        assert_eq!(t, "session of user bob expired");
    }

    #[test]
    fn a_poisoned_miner_falls_back_to_masked_templates() {
        let fields = Map::new();
        let miner = Arc::new(Mutex::new(Miner::new(MinerConfig::default())));
        let held = miner.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.lock();
            panic!("a panic while the miner is locked");
        })
        .join();
        let mut f = Fingerprinter::new(Some(miner));
        f.apply(input("session of user alice expired", &fields));
        let (t, _) = f.apply(input("session of user bob expired", &fields));
        assert_eq!(t, "session of user bob expired");
    }

    #[test]
    fn same_crash_different_message_same_fingerprint() {
        let fields = Map::new();
        let mut f = shared_miner();
        for (a, b) in trace::tests::same_crash_pairs() {
            let (ta, fa) = f.apply(input(a, &fields));
            let (tb, fb) = f.apply(input(b, &fields));
            assert_eq!((&ta, fa), (&tb, fb), "\n{a}\n--- vs ---\n{b}");
        }
    }

    #[test]
    fn a_stack_trace_is_fingerprinted_by_its_signature() {
        let fields = Map::new();
        let mut f = shared_miner();
        let trace = |id: u32| {
            format!(
                "Exception in thread \"main\" java.lang.IllegalStateException: order {id} rejected\n\
                 \tat com.acme.Orders.place(Orders.java:{})\n\tat com.acme.Main.main(Main.java:7)",
                40 + id % 3
            )
        };
        let (a, b) = (trace(4711), trace(815));
        let (ta, fa) = f.apply(input(&a, &fields));
        let (_, fb) = f.apply(input(&b, &fields));
        assert_eq!(
            ta,
            "java: java.lang.IllegalStateException\n  at com.acme.Orders.place (Orders.java:<num>)\n  at com.acme.Main.main (Main.java:<num>)"
        );
        assert_eq!(fa, fb);
    }

    #[test]
    fn keys_select_what_is_hashed_in_order() {
        let mut fields = Map::new();
        fields.insert("job".into(), Value::String("lint".into()));
        fields.insert("attempt".into(), Value::from(2));
        let keys: Vec<String> = [
            "service",
            "fields.job",
            "fields.attempt",
            "fields.none",
            "level",
            "source",
        ]
        .map(String::from)
        .to_vec();
        let mut f = Fingerprinter::new(None);
        let (_, got) = f.apply(FingerprintInput {
            keys: Some(&keys),
            ..input("anything 1", &fields)
        });
        let want = fingerprint([
            ("service", Some("build-svc")),
            ("fields.job", Some("lint")),
            ("fields.attempt", Some("2")),
            ("fields.none", None),
            ("level", Some("error")),
            ("source", Some("ci")),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn an_absent_value_differs_from_an_empty_one_and_order_matters() {
        let absent = fingerprint([("service", None)]);
        let empty = fingerprint([("service", Some(""))]);
        assert_ne!(absent, empty);
        assert_ne!(
            fingerprint([("a", Some("1")), ("b", Some("2"))]),
            fingerprint([("b", Some("2")), ("a", Some("1"))])
        );
        // A boundary cannot be forged with the bytes of a value.
        assert_ne!(
            fingerprint([("a", Some("x")), ("b", Some("y"))]),
            fingerprint([(
                "a",
                Some("x\u{1}\u{1}\0\0\0\0\0\0\0b\u{1}\u{1}\0\0\0\0\0\0\0y")
            )])
        );
    }
}
