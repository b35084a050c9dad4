//! Multiline: joins the lines of one record (a stack trace, a block a rule
//! describes) into one record, per stream, before extraction.
//!
//! A record is held while its next line may still continue it, and goes out
//! when a line does not, when it reaches `max_lines` or `max_bytes` (cut, and
//! flagged), or when no line came for `timeout`. Which rule joins a record is
//! decided by its first line: a pattern's `multiline` rule when a pattern with
//! one matches it, else the source's rule (`auto`, `none` or a `start` /
//! `continue` regex). Every container stream (stdout, stderr) of a file has its
//! own joiner, so interleaved streams never mix.
//!
//! This module must not read, extract or know about positions: it tells the
//! reader the offset of the first line it still holds, and the reader keeps
//! the position before it.

pub mod auto;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::event::Record;
use crate::pattern::{MultilineSpec, PatternSet};

/// The limits of records joined by `auto` (and the defaults of rules).
pub const MAX_LINES: usize = 500;
pub const MAX_BYTES: u64 = 1 << 20;
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// How a source joins lines.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Every line is a record.
    None,
    /// The built-in stack-trace rules (see [`auto`]).
    Auto,
    /// A `start` or `continue` regex from `[source.multiline]`.
    Rule(Arc<MultilineSpec>),
}

impl Mode {
    pub fn describe(&self) -> String {
        match self {
            Mode::None => "none".into(),
            Mode::Auto => "auto".into(),
            Mode::Rule(r) => match (&r.start, &r.cont) {
                (Some(s), _) => format!("start={s}"),
                (_, Some(c)) => format!("continue={c}"),
                _ => "rule".into(),
            },
        }
    }
}

/// What one read's records are joined with: the source's mode and the
/// pattern set of that read (whose patterns may carry their own rules).
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    pub mode: &'a Mode,
    pub patterns: Option<&'a PatternSet>,
    pub source: &'a str,
}

#[derive(Debug)]
enum How {
    Rule(Arc<MultilineSpec>),
    Trace(auto::Trace),
    /// A log line about a problem: the trace it announces may follow.
    Problem,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_lines: usize,
    max_bytes: usize,
    timeout: Duration,
}

impl Limits {
    const AUTO: Limits = Limits {
        max_lines: MAX_LINES,
        max_bytes: MAX_BYTES as usize,
        timeout: TIMEOUT,
    };

    fn of(spec: &MultilineSpec) -> Limits {
        Limits {
            max_lines: spec.max_lines.max(1),
            max_bytes: usize::try_from(spec.max_bytes).unwrap_or(usize::MAX),
            timeout: spec.timeout,
        }
    }
}

#[derive(Debug)]
struct Open {
    rec: Record,
    lines: usize,
    /// Blank lines seen since the last line joined: they join only if a line follows.
    blanks: usize,
    how: How,
    limits: Limits,
    deadline: Instant,
}

impl Open {
    fn new(rec: Record, how: How, limits: Limits, now: Instant) -> Open {
        Open {
            rec,
            lines: 1,
            blanks: 0,
            how,
            limits,
            deadline: now + limits.timeout,
        }
    }

    fn continues(&mut self, line: &str) -> bool {
        match &mut self.how {
            How::Rule(spec) => match (&spec.start, &spec.cont) {
                (Some(start), _) => !start.is_match(line),
                (None, Some(cont)) => cont.is_match(line),
                (None, None) => false,
            },
            How::Trace(t) => t.continues(line),
            How::Problem => false,
        }
    }

    fn has_room_for(&self, line: &str) -> bool {
        let bytes = self.rec.line.len() + self.blanks + 1 + line.len();
        self.lines < self.limits.max_lines && bytes <= self.limits.max_bytes
    }

    fn append(&mut self, rec: Record, now: Instant) {
        let line = &mut self.rec.line;
        line.reserve(self.blanks + 1 + rec.line.len());
        for _ in 0..=self.blanks {
            line.push('\n');
        }
        line.push_str(&rec.line);
        self.lines += 1 + self.blanks;
        self.blanks = 0;
        // Flags of any line (truncated, invalid_utf8, partial) hold for the record.
        for (k, v) in rec.fields {
            self.rec.fields.entry(k).or_insert(v);
        }
        self.deadline = now + self.limits.timeout;
    }
}

/// Joins the records of one stream.
#[derive(Debug, Default)]
pub struct Joiner {
    open: Option<Open>,
}

impl Joiner {
    /// Takes the next record of the stream; pushes to `out` what is complete.
    pub fn push(&mut self, rec: Record, now: Instant, rules: Rules<'_>, out: &mut Vec<Record>) {
        if rec.json.is_some() {
            // A JSON record is whole; it also ends whatever text record was open.
            self.emit(out);
            out.push(rec);
            return;
        }
        let blank = auto::is_blank(&rec.line);
        if let Some(open) = self.open.as_mut() {
            if open.continues(&rec.line) {
                if blank {
                    open.blanks += 1;
                    open.deadline = now + open.limits.timeout;
                } else if open.has_room_for(&rec.line) {
                    open.append(rec, now);
                } else {
                    self.cut(rec, now, out);
                }
                return;
            }
            if !blank && open.lines == 1 && matches!(open.how, How::Problem) {
                if let Some(trace) = auto::trace_after(&rec.line) {
                    open.how = How::Trace(trace);
                    open.append(rec, now);
                    return;
                }
            }
            self.emit(out);
        }
        if !blank {
            self.start(rec, now, rules, out);
        }
    }

    fn start(&mut self, rec: Record, now: Instant, rules: Rules<'_>, out: &mut Vec<Record>) {
        if matches!(rules.mode, Mode::None) {
            out.push(rec);
            return;
        }
        let source_rule = match rules.mode {
            Mode::Rule(spec) => Some(spec),
            Mode::None | Mode::Auto => None,
        };
        let rule = rules
            .patterns
            .and_then(|set| set.multiline_rule(&rec.line, rules.source))
            .or(source_rule);
        let (how, limits) = match rule {
            Some(spec) => (How::Rule(spec.clone()), Limits::of(spec)),
            None => match auto::open(&rec.line) {
                auto::Opening::Plain => {
                    out.push(rec);
                    return;
                }
                auto::Opening::Problem => (How::Problem, Limits::AUTO),
                auto::Opening::Trace(t) => (How::Trace(t), Limits::AUTO),
            },
        };
        self.open = Some(Open::new(rec, how, limits, now));
    }

    /// The open record is full: it goes out flagged, and `rec` begins the
    /// next record under the same rule, so a runaway record comes out in pieces.
    fn cut(&mut self, rec: Record, now: Instant, out: &mut Vec<Record>) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        open.rec
            .fields
            .insert("multiline_cut".into(), Value::Bool(true));
        out.push(open.rec);
        self.open = Some(Open::new(rec, open.how, open.limits, now));
    }

    fn emit(&mut self, out: &mut Vec<Record>) {
        if let Some(open) = self.open.take() {
            out.push(open.rec);
        }
    }

    /// Sends out the record held past its timeout.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Record>) {
        if self.open.as_ref().is_some_and(|o| o.deadline <= now) {
            self.emit(out);
        }
    }

    /// The stream ends: what is held goes out.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        self.emit(out);
    }

    /// The offset of the record held, if any.
    pub fn pending_offset(&self) -> Option<u64> {
        self.open.as_ref().map(|o| o.rec.offset)
    }

    /// When the held record times out.
    pub fn due(&self) -> Option<Instant> {
        self.open.as_ref().map(|o| o.deadline)
    }
}

/// The joiners of one file: one per container stream.
#[derive(Debug, Default)]
pub struct Joiners {
    streams: [Joiner; 2],
}

impl Joiners {
    pub fn push(&mut self, rec: Record, now: Instant, rules: Rules<'_>, out: &mut Vec<Record>) {
        let i = usize::from(rec.fields.get("stream").and_then(Value::as_str) == Some("stderr"));
        self.streams[i].push(rec, now, rules, out);
    }

    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Record>) {
        for j in self.by_offset() {
            j.flush_expired(now, out);
        }
    }

    pub fn finish(&mut self, out: &mut Vec<Record>) {
        for j in self.by_offset() {
            j.finish(out);
        }
    }

    /// The joiners, the one holding the earliest record first: records go out in file order.
    fn by_offset(&mut self) -> Vec<&mut Joiner> {
        let mut all: Vec<&mut Joiner> = self.streams.iter_mut().collect();
        all.sort_by_key(|j| j.pending_offset());
        all
    }

    pub fn pending_offset(&self) -> Option<u64> {
        self.streams.iter().filter_map(Joiner::pending_offset).min()
    }

    pub fn due(&self) -> Option<Instant> {
        self.streams.iter().filter_map(Joiner::due).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(start: Option<&str>, cont: Option<&str>, max_lines: usize) -> Mode {
        Mode::Rule(Arc::new(MultilineSpec {
            start: start.map(|s| regex::Regex::new(s).unwrap()),
            cont: cont.map(|c| regex::Regex::new(c).unwrap()),
            max_lines,
            max_bytes: MAX_BYTES,
            timeout: Duration::from_secs(1),
        }))
    }

    /// Feeds `lines` (one record each, offsets by line length) at `t0`; returns
    /// the joined lines out, and the joiner.
    fn join(mode: &Mode, lines: &[&str]) -> (Vec<Record>, Joiner, Instant) {
        let t0 = Instant::now();
        let rules = Rules {
            mode,
            patterns: None,
            source: "s",
        };
        let (mut j, mut out, mut offset) = (Joiner::default(), Vec::new(), 0);
        for l in lines {
            j.push(Record::text(offset, l.to_string()), t0, rules, &mut out);
            offset += l.len() as u64 + 1;
        }
        (out, j, t0)
    }

    fn texts(records: &[Record]) -> Vec<&str> {
        records.iter().map(|r| r.line.as_str()).collect()
    }

    #[test]
    fn start_rule_joins_until_the_next_start_line() {
        let mode = rule(Some(r"^\d"), None, 100);
        let (mut out, mut j, _) = join(&mode, &["1 a", "  x", "", "  y", "2 b", "  z"]);
        assert_eq!(texts(&out), ["1 a\n  x\n\n  y"]);
        assert_eq!(j.pending_offset(), Some(13), "the second record is held");
        j.finish(&mut out);
        assert_eq!(texts(&out)[1], "2 b\n  z");
    }

    #[test]
    fn continue_rule_joins_matching_lines_and_drops_blank_lines_between_records() {
        let mode = rule(None, Some(r"^\s"), 100);
        let (mut out, mut j, _) = join(&mode, &["a", " 1", "", "b", "c", " 2"]);
        j.finish(&mut out);
        assert_eq!(texts(&out), ["a\n 1", "b", "c\n 2"]);
        assert_eq!(out[1].offset, 6, "a record's offset is its first line's");
    }

    #[test]
    fn trailing_blank_lines_are_not_part_of_a_record() {
        let mode = rule(Some(r"^\S"), None, 100);
        let (mut out, mut j, _) = join(&mode, &["a", " 1", "", ""]);
        j.finish(&mut out);
        assert_eq!(texts(&out), ["a\n 1"]);
    }

    #[test]
    fn a_record_at_max_lines_is_cut_and_flagged() {
        let mode = rule(Some(r"^\S"), None, 3);
        let (mut out, mut j, _) = join(&mode, &["a", " 1", " 2", " 3", " 4", "b"]);
        j.finish(&mut out);
        assert_eq!(texts(&out), ["a\n 1\n 2", " 3\n 4", "b"]);
        assert_eq!(out[0].fields.get("multiline_cut"), Some(&Value::Bool(true)));
        assert!(!out[1].fields.contains_key("multiline_cut"));
    }

    #[test]
    fn held_record_goes_out_at_its_timeout_not_before() {
        let mode = rule(Some(r"^\S"), None, 100);
        let (mut out, mut j, t0) = join(&mode, &["a", " 1"]);
        assert!(out.is_empty());
        j.flush_expired(t0 + Duration::from_millis(999), &mut out);
        assert!(out.is_empty(), "flushed before its timeout");
        assert_eq!(j.due(), Some(t0 + Duration::from_secs(1)));
        j.flush_expired(t0 + Duration::from_secs(1), &mut out);
        assert_eq!(texts(&out), ["a\n 1"]);
        assert_eq!(j.pending_offset(), None);
    }

    #[test]
    fn none_drops_blank_lines_and_joins_nothing() {
        let (out, j, _) = join(&Mode::None, &["a", "", "  b"]);
        assert_eq!(texts(&out), ["a", "  b"]);
        assert_eq!(j.pending_offset(), None);
    }

    #[test]
    fn a_json_record_is_never_joined() {
        let mode = rule(Some(r"^\S"), None, 100);
        let t0 = Instant::now();
        let rules = Rules {
            mode: &mode,
            patterns: None,
            source: "s",
        };
        let (mut j, mut out) = (Joiner::default(), Vec::new());
        j.push(Record::text(0, "a".into()), t0, rules, &mut out);
        let mut json = Record::text(2, " {}".into());
        json.json = Some(serde_json::Map::new());
        j.push(json, t0, rules, &mut out);
        assert_eq!(texts(&out), ["a", " {}"]);
    }

    #[test]
    fn container_streams_are_joined_apart() {
        let mode = rule(Some(r"^\S"), None, 100);
        let t0 = Instant::now();
        let rules = Rules {
            mode: &mode,
            patterns: None,
            source: "s",
        };
        let rec = |offset, line: &str, stream: &str| {
            let mut r = Record::text(offset, line.into());
            r.fields
                .insert("stream".into(), Value::String(stream.into()));
            r
        };
        let (mut j, mut out) = (Joiners::default(), Vec::new());
        for (i, (line, stream)) in [
            ("out-a", "stdout"),
            ("err-a", "stderr"),
            (" out-1", "stdout"),
            (" err-1", "stderr"),
            ("out-b", "stdout"),
        ]
        .into_iter()
        .enumerate()
        {
            j.push(rec(i as u64 * 10, line, stream), t0, rules, &mut out);
        }
        assert_eq!(texts(&out), ["out-a\n out-1"]);
        assert_eq!(
            j.pending_offset(),
            Some(10),
            "stderr's record is the earliest held"
        );
        j.finish(&mut out);
        assert_eq!(texts(&out), ["out-a\n out-1", "err-a\n err-1", "out-b"]);
    }
}
