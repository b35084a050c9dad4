//! Loki label sets: what a label name may be, how a selector is written, and the labels of
//! an event (`host`, `source`, the source's static labels, the promoted fields).
//!
//! Must not: decide which fields are promoted (the config validates `labels` once) or
//! allocate per event: an event's labels are written into buffers that are reused.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;

use crate::event::Event;
use crate::route::value_of;

/// At most this many labels per stream (Loki's `max_label_names_per_series`).
pub const MAX_LABELS: usize = 15;
/// Longer label values are cut here (Loki's `max_label_value_length`); so are metadata values.
pub const MAX_VALUE_BYTES: usize = 2048;

/// Whether Loki takes `name` as it is: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`
/// (reserved for Loki's own labels).
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.starts_with("__")
}

/// The name as Loki takes it: other characters become `_`, a leading digit gets a `_`
/// before it, and a leading `__` becomes `_`.
pub fn sanitized(name: &str) -> Cow<'_, str> {
    if is_valid_name(name) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 1);
    push_sanitized(&mut out, name);
    Cow::Owned(out)
}

fn push_sanitized(out: &mut String, name: &str) {
    if is_valid_name(name) {
        return out.push_str(name);
    }
    let start = out.len();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.push('_');
    }
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    let underscores = out[start..].bytes().take_while(|b| *b == b'_').count();
    if underscores > 1 {
        out.drain(start..start + underscores - 1);
    }
}

/// Appends `value` quoted as Go's `strconv.Quote` does, which Loki's selector parser reads
/// back: `"` and `\` escaped, control characters as `\n`, `\t`, `\r` or `\u00XX`.
pub fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A field promoted to a label, or sent as structured metadata: the event key it reads and
/// the name it has in Loki.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promoted {
    pub field: String,
    pub name: String,
}

/// The labels of one event, built in reused buffers: names and values go into one string,
/// then the pairs are sorted by name, a later label replacing an earlier one of its name.
#[derive(Debug, Default)]
pub struct LabelSet {
    host: String,
    text: String,
    pairs: Vec<Pair>,
    selector: String,
    /// Labels left out of the last event's set to keep within [`MAX_LABELS`].
    dropped: usize,
}

/// What an event's label set is made of, cheaper to compare than the set: the addresses of
/// its static labels and source (the caller holds those `Arc`s while it keeps the key, so no
/// other can take their address) and its promoted values, one after the other with where
/// each ends. Events with equal keys have equal label sets.
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
pub struct LabelKey {
    labels: usize,
    source: usize,
    promoted: String,
    ends: Vec<usize>,
}

impl LabelKey {
    /// Takes the key of `ev`.
    pub fn set(&mut self, ev: &Event, promoted: &[Promoted]) {
        self.labels = Arc::as_ptr(&ev.labels) as usize;
        self.source = Arc::as_ptr(&ev.source).cast::<u8>() as usize;
        self.promoted.clear();
        self.ends.clear();
        for p in promoted {
            if let Some(v) = value_of(&p.field, ev) {
                v.write(&mut self.promoted);
            }
            self.ends.push(self.promoted.len());
        }
    }
}

#[derive(Debug)]
struct Pair {
    name: Range<usize>,
    value: Range<usize>,
    /// Which labels go first when there are too many: static ones, then the others.
    keep: Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Keep {
    Static,
    Always,
}

impl LabelSet {
    /// The label sets of the events of this `host`.
    pub fn new(host: String) -> LabelSet {
        LabelSet {
            host,
            ..LabelSet::default()
        }
    }

    /// Takes the labels of `ev`: `host` and `source`, then the source's static labels, then
    /// the promoted fields the event has.
    pub fn set_event(&mut self, ev: &Event, promoted: &[Promoted]) {
        self.text.clear();
        self.pairs.clear();
        let host = std::mem::take(&mut self.host);
        self.push(Keep::Always, "host", |out| out.push_str(&host));
        self.host = host;
        self.push(Keep::Always, "source", |out| out.push_str(&ev.source));
        for (name, value) in ev.labels.iter() {
            self.push(Keep::Static, name, |out| out.push_str(value));
        }
        for p in promoted {
            if let Some(v) = value_of(&p.field, ev) {
                self.push(Keep::Always, &p.name, |out| v.write(out));
            }
        }
        self.finish();
    }

    /// How many labels the last event had beyond [`MAX_LABELS`] (static ones of the source or
    /// its pattern), left out.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Adds a label whose value `write` appends; an empty value adds nothing (Loki ignores
    /// empty labels), a long one is cut.
    fn push(&mut self, keep: Keep, name: &str, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        push_sanitized(&mut self.text, name);
        let mid = self.text.len();
        write(&mut self.text);
        let end = mid + cut(&self.text[mid..], MAX_VALUE_BYTES).len();
        self.text.truncate(end);
        if end == mid {
            self.text.truncate(start);
        } else {
            self.pairs.push(Pair {
                name: start..mid,
                value: mid..end,
                keep,
            });
        }
    }

    fn finish(&mut self) {
        let text = &self.text;
        // Stable: of two labels with one name, the later pushed stays after the earlier.
        self.pairs
            .sort_by(|a, b| text[a.name.clone()].cmp(&text[b.name.clone()]));
        self.pairs.dedup_by(|later, earlier| {
            let same = text[later.name.clone()] == text[earlier.name.clone()];
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        // Pattern files may add static labels the config could not count: the last static
        // ones by name go.
        self.dropped = 0;
        while self.pairs.len() > MAX_LABELS {
            let Some(i) = self.pairs.iter().rposition(|p| p.keep == Keep::Static) else {
                break;
            };
            self.pairs.remove(i);
            self.dropped += 1;
        }
        self.selector.clear();
        self.selector.push('{');
        for (i, p) in self.pairs.iter().enumerate() {
            if i > 0 {
                self.selector.push_str(", ");
            }
            self.selector.push_str(&text[p.name.clone()]);
            self.selector.push('=');
            push_quoted(&mut self.selector, &text[p.value.clone()]);
        }
        self.selector.push('}');
    }

    /// The selector of the last event: `{name="value", ...}`, the stream's identity.
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The pairs of the last event, sorted by name.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .map(|p| (&self.text[p.name.clone()], &self.text[p.value.clone()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Level, Origin, Record, Timestamp};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    #[test]
    fn names_are_sanitized_to_what_loki_takes() {
        for (name, want) in [
            ("job", "job"),
            ("job-name", "job_name"),
            ("k8s.pod", "k8s_pod"),
            ("1st", "_1st"),
            ("__name__", "_name__"),
            ("", "_"),
            ("é", "_"),
        ] {
            assert_eq!(sanitized(name), want, "{name}");
            assert!(is_valid_name(&sanitized(name)), "{name}");
        }
    }

    #[test]
    fn values_are_quoted_as_go_does() {
        let mut out = String::new();
        push_quoted(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn an_event_s_labels_are_sorted_with_promoted_fields_winning() {
        let labels = Arc::new(BTreeMap::from([
            ("job-name".to_string(), "ci".to_string()),
            ("service".to_string(), "static".to_string()),
            ("empty".to_string(), String::new()),
        ]));
        let origin = Origin::new("builds".into(), None, labels);
        let mut ev = Event::from_record(
            Record::text(0, "x".into()),
            &origin,
            Timestamp::from_nanos(0),
        );
        ev.service = Some("api".into());
        ev.level = Some(Level::Error);
        let promoted = [
            Promoted {
                field: "service".into(),
                name: "service".into(),
            },
            Promoted {
                field: "level".into(),
                name: "level".into(),
            },
            Promoted {
                field: "ci_run_id".into(),
                name: "ci_run_id".into(),
            },
        ];
        let mut set = LabelSet::new("web-1".into());
        set.set_event(&ev, &promoted);
        assert_eq!(
            set.selector(),
            r#"{host="web-1", job_name="ci", level="error", service="api", source="builds"}"#
        );
        assert_eq!(set.pairs().count(), 5);
        let (mut a, mut b) = (LabelKey::default(), LabelKey::default());
        a.set(&ev, &promoted);
        b.set(&ev.clone(), &promoted);
        assert_eq!(a, b, "a clone shares the labels' Arcs");
        ev.service = None;
        set.set_event(&ev, &promoted);
        assert!(set.selector().contains(r#"service="static""#));
        b.set(&ev, &promoted);
        assert_ne!(a, b);
        ev.service = Some("apierror".into());
        ev.level = None;
        b.set(&ev, &promoted);
        assert_ne!(a, b, "values are told apart where they end");
    }

    #[test]
    fn static_labels_beyond_the_limit_are_left_out() {
        let labels: BTreeMap<String, String> = (0..20)
            .map(|i| (format!("l{i:02}"), "v".to_string()))
            .collect();
        let origin = Origin::new("s".into(), None, Arc::new(labels));
        let mut ev = Event::from_record(
            Record::text(0, "x".into()),
            &origin,
            Timestamp::from_nanos(0),
        );
        ev.level = Some(Level::Warn);
        let promoted = [Promoted {
            field: "level".into(),
            name: "level".into(),
        }];
        let mut set = LabelSet::new("h".into());
        set.set_event(&ev, &promoted);
        assert_eq!(set.pairs().count(), MAX_LABELS);
        assert_eq!(set.dropped(), 8);
        let names: Vec<&str> = set.pairs().map(|(n, _)| n).collect();
        assert_eq!(&names[..3], ["host", "l00", "l01"]);
        assert!(names.contains(&"level") && names.contains(&"source"));
        assert!(!names.contains(&"l19"));
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_VALUE_BYTES);
        assert_eq!(cut(&long, MAX_VALUE_BYTES).len(), MAX_VALUE_BYTES);
        assert_eq!(cut(&long, 3).len(), 2);
    }
}
