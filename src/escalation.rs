//! The escalation (SPEC §5): what receivers are told about a group, and its two renderings
//! that do not depend on a provider: NDJSON (serde, key order as in the spec) and the console's
//! text block ([`Escalation::render_text`]). Also the LogQL that finds the lines again.
//!
//! Owns the escalation's shape, its sample record and the escaping of log content for display.
//! Must not: decide when to escalate (that is [`crate::window`]), send anything, or do I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::{Event, Fingerprint, Level, Timestamp};
use crate::pattern::level_name;

/// Why an escalation was made.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The group reached its threshold in a window (after `group_wait`, if any).
    First,
    /// The group kept firing for `repeat_interval` after its last first/repeat.
    Repeat,
    /// A window closed (or the group was evicted) with events nobody was told about.
    Summary,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::First, Kind::Repeat, Kind::Summary];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::First => "first",
            Kind::Repeat => "repeat",
            Kind::Summary => "summary",
        }
    }
}

/// The keys of an escalation as written (SPEC §5), in order.
pub const KEYS: [&str; 18] = [
    "route",
    "receiver",
    "kind",
    "group",
    "fingerprint",
    "level",
    "service",
    "ci_run_id",
    "pattern",
    "message",
    "count",
    "suppressed",
    "first_seen",
    "last_seen",
    "sample",
    "context",
    "loki_query",
    "host",
];

/// One escalation for one receiver. Serialized (the `file` receiver's NDJSON), the keys come in
/// this order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Escalation {
    pub route: Arc<str>,
    /// The receiver this copy is for (empty for a route without receivers, e.g. in `replay`).
    pub receiver: Arc<str>,
    pub kind: Kind,
    /// The route's `group_by` keys with the group's values (`null` when absent).
    pub group: Map<String, Value>,
    pub fingerprint: Option<Fingerprint>,
    pub level: Option<Level>,
    pub service: Option<String>,
    pub ci_run_id: Option<String>,
    pub pattern: Option<Arc<str>>,
    pub message: Option<String>,
    /// Events of the group in the current window.
    pub count: u64,
    /// Events this receiver was not told about since the group's last escalation to it.
    pub suppressed: u64,
    /// The window's first event.
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// The window's first record.
    pub sample: Sample,
    /// Lines that preceded the sample in its stream, oldest first.
    pub context: Vec<String>,
    /// LogQL that finds these lines; empty when the stream's labels are unknown.
    pub loki_query: String,
    pub host: String,
    /// The route's `mention` ids, which chat receivers add to their own; only ever from the
    /// config. Not written when empty, so the object is exactly SPEC §5 unless a route uses it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention: Vec<String>,
}

/// The first record of a window, with the event keys of SPEC §4. Long text is cut at
/// [`Sample::MAX_TEXT_BYTES`], because every live group keeps one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Sample {
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
    pub labels: Arc<BTreeMap<String, String>>,
}

impl Sample {
    /// `line`, `message` and `template` are cut here (at a character boundary): enough for
    /// the first lines of a stack trace, and a bound on what 10,000 groups keep.
    pub const MAX_TEXT_BYTES: usize = 2048;
    /// Context lines kept with a sample, the last ones.
    pub const MAX_CONTEXT_LINES: usize = 20;
    /// Each context line is cut here.
    pub const MAX_CONTEXT_LINE_BYTES: usize = 512;

    pub fn from_event(ev: &Event) -> Sample {
        let cut = |s: &str| cut_at(s, Sample::MAX_TEXT_BYTES).to_string();
        Sample {
            ts: ev.ts,
            source: ev.source.clone(),
            path: ev.path.clone(),
            offset: ev.offset,
            line: cut(&ev.line),
            level: ev.level,
            service: ev.service.clone(),
            ci_run_id: ev.ci_run_id.clone(),
            pattern: ev.pattern.clone(),
            matched: ev.matched,
            message: ev.message.as_deref().map(cut),
            template: ev.template.as_deref().map(cut),
            fingerprint: ev.fingerprint,
            fields: ev.fields.clone(),
            labels: ev.labels.clone(),
        }
    }

    /// The context kept with a sample: the last [`Sample::MAX_CONTEXT_LINES`], each cut.
    pub fn trim_context(context: &[String]) -> Vec<String> {
        let skip = context.len().saturating_sub(Sample::MAX_CONTEXT_LINES);
        context[skip..]
            .iter()
            .map(|l| cut_at(l, Sample::MAX_CONTEXT_LINE_BYTES).to_string())
            .collect()
    }
}

crate::route::impl_keyed!(Sample);

/// The longest prefix of `s` of at most `max` bytes that ends at a character boundary.
pub(crate) fn cut_at(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The longest filter [`stable_part`] returns, in bytes.
pub const FILTER_MAX_BYTES: usize = 60;

/// The part of a line that a LogQL line filter should look for: on the first line, the longest
/// run of whitespace-separated words that contain no digit (numbers, ids, times, addresses
/// vary from one occurrence to the next) and no `"` or `\` (written differently once a line
/// is JSON), cut at a word end within [`FILTER_MAX_BYTES`]. When every word varies, the first
/// line's first bytes: that still finds this very line.
pub fn stable_part(line: &str) -> &str {
    let first = line.split(['\n', '\r']).next().unwrap_or("").trim();
    let stable = |w: &str| {
        !w.bytes()
            .any(|b| b.is_ascii_digit() || b == b'"' || b == b'\\')
    };
    let mut best: Option<(usize, usize)> = None;
    let mut run: Option<(usize, usize)> = None;
    let mut pos = 0;
    for word in first.split_ascii_whitespace() {
        // `split_ascii_whitespace` yields subslices in order; find each one's offset.
        let start = pos + first[pos..].find(word).unwrap_or(0);
        let end = start + word.len();
        pos = end;
        if !stable(word) {
            run = None;
            continue;
        }
        let (s, e) = match run {
            Some((s, _)) if end - s <= FILTER_MAX_BYTES => (s, end),
            Some((s, e)) => {
                // The run is full: keep it as a candidate and start again from this word.
                consider(&mut best, (s, e));
                (start, end)
            }
            None => (start, end),
        };
        run = Some((s, e));
        consider(&mut best, (s, e));
    }
    match best {
        Some((s, e)) => cut_at(&first[s..e], FILTER_MAX_BYTES),
        None => cut_at(first, FILTER_MAX_BYTES),
    }
}

fn consider(best: &mut Option<(usize, usize)>, span: (usize, usize)) {
    if best.is_none_or(|(s, e)| span.1 - span.0 > e - s) {
        *best = Some(span);
    }
}

/// The escalation `logward notify test RECEIVER` sends: a `first` of route `logward-test`,
/// plainly marked as a test, with a two-line sample.
pub fn sample_escalation(receiver: &str, host: String) -> Escalation {
    let now = Timestamp::now();
    let line = "ERROR logward notify test: this is a test notification, nothing is wrong\n\tat logward.notify.test";
    let labels = Arc::new(BTreeMap::from([("job".to_string(), "logward".to_string())]));
    let sample = Sample {
        ts: now,
        source: "logward".into(),
        path: None,
        offset: 0,
        line: line.to_string(),
        level: Some(Level::Error),
        service: Some("logward".into()),
        ci_run_id: None,
        pattern: Some("logward.notify-test".into()),
        matched: true,
        message: Some("logward notify test: this is a test notification, nothing is wrong".into()),
        template: Some("logward notify test: this is a test notification, nothing is wrong".into()),
        fingerprint: Some(Fingerprint(0)),
        fields: Map::new(),
        labels: labels.clone(),
    };
    Escalation {
        route: "logward-test".into(),
        receiver: receiver.into(),
        kind: Kind::First,
        group: Map::from_iter([("fingerprint".to_string(), Value::from("0000000000000000"))]),
        fingerprint: sample.fingerprint,
        level: sample.level,
        service: sample.service.clone(),
        ci_run_id: None,
        pattern: sample.pattern.clone(),
        message: sample.message.clone(),
        count: 1,
        suppressed: 0,
        first_seen: now,
        last_seen: now,
        loki_query: loki_query(&labels, line),
        sample,
        context: vec!["INFO logward notify test: a line before the sample".into()],
        host,
        mention: Vec::new(),
    }
}

/// LogQL: `{label="value",...} |= "filter"`, where the filter is [`stable_part`] of `line`.
/// Label names that Loki would refuse have their other characters replaced by `_`. Empty when
/// `labels` is empty: a LogQL selector needs at least one label.
pub fn loki_query(labels: &BTreeMap<String, String>, line: &str) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut q = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            q.push_str(", ");
        }
        push_label_name(&mut q, k);
        q.push_str("=\"");
        push_logql_escaped(&mut q, v);
        q.push('"');
    }
    q.push('}');
    let filter = stable_part(line);
    if !filter.is_empty() {
        q.push_str(" |= \"");
        push_logql_escaped(&mut q, filter);
        q.push('"');
    }
    q
}

fn push_label_name(out: &mut String, name: &str) {
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
    );
}

/// Escapes for a double-quoted LogQL string (Go's string literal rules).
fn push_logql_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Lines of the sample shown in a text block.
const TEXT_SAMPLE_LINES: usize = 8;
/// Context lines shown in a text block (the last ones).
const TEXT_CONTEXT_LINES: usize = 5;
/// Characters of one shown line.
const TEXT_LINE_CHARS: usize = 200;

impl Escalation {
    /// The console's rendering: one block, every line of which starts with `==` (the header) or
    /// with three spaces, followed by an empty line. Log content cannot break out of it: ANSI
    /// escape sequences are removed, control and bidi characters are shown escaped, lines are
    /// capped.
    pub fn render_text(&self) -> String {
        let mut out = String::with_capacity(512);
        let _ = write!(
            out,
            "== {} · route {} · level {} · service {} · count {}, suppressed {} · {} .. {}",
            self.kind.as_str(),
            clean(&self.route),
            self.level.map_or("-", level_name),
            self.service.as_deref().map_or("-".into(), clean),
            self.count,
            self.suppressed,
            self.first_seen,
            self.last_seen,
        );
        if !self.receiver.is_empty() {
            let _ = write!(out, " · to {}", clean(&self.receiver));
        }
        out.push('\n');
        let group = self
            .group
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => "-".into(),
                    other => other.to_string(),
                };
                format!("{}={}", clean(k), clean(&v))
            })
            .collect::<Vec<_>>()
            .join(" ");
        field(&mut out, "group", &group);
        if let Some(run) = &self.ci_run_id {
            field(&mut out, "run", &clean(run));
        }
        if let Some(p) = &self.pattern {
            field(&mut out, "pattern", &clean(p));
        }
        if let Some(m) = &self.message {
            field(&mut out, "message", &clean(m.lines().next().unwrap_or("")));
        }
        lines(
            &mut out,
            "sample",
            self.sample.line.lines(),
            TEXT_SAMPLE_LINES,
            false,
        );
        if !self.context.is_empty() {
            let ctx = self.context.iter().map(String::as_str);
            lines(&mut out, "context", ctx, TEXT_CONTEXT_LINES, true);
        }
        if !self.loki_query.is_empty() {
            field(&mut out, "loki", &clean(&self.loki_query));
        }
        if !self.host.is_empty() {
            field(&mut out, "host", &clean(&self.host));
        }
        out.push('\n');
        out
    }
}

fn field(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(out, "   {name:<8} {value}");
}

/// Up to `max` lines as `| text`; `tail` keeps the last ones (context leads up to the sample).
fn lines<'a>(
    out: &mut String,
    name: &str,
    all: impl Iterator<Item = &'a str>,
    max: usize,
    tail: bool,
) {
    let all: Vec<&str> = all.collect();
    let (shown, hidden) = if all.len() <= max {
        (&all[..], 0)
    } else if tail {
        (&all[all.len() - max..], all.len() - max)
    } else {
        (&all[..max], all.len() - max)
    };
    let mut label = name;
    if tail && hidden > 0 {
        let _ = writeln!(out, "   {label:<8} | ({hidden} earlier lines)");
        label = "";
    }
    for l in shown {
        let _ = writeln!(out, "   {label:<8} | {}", clean(l));
        label = "";
    }
    if !tail && hidden > 0 {
        let _ = writeln!(out, "   {label:<8} | ({hidden} more lines)");
    }
}

/// One line of log content made safe to print: ANSI escape sequences removed; control
/// characters, bidi overrides and Unicode line separators shown as `\u{..}` (tab as `\t`);
/// at most `TEXT_LINE_CHARS` characters, then `…`.
pub fn clean(s: &str) -> String {
    clean_max(s, TEXT_LINE_CHARS)
}

/// [`clean`] with at most `max` characters shown.
pub fn clean_max(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 8));
    let mut chars = s.chars().peekable();
    let mut shown = 0;
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            skip_escape(&mut chars);
            continue;
        }
        if shown == max {
            out.push('…');
            break;
        }
        shown += 1;
        match c {
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_invisible_format(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters that reorder or break displayed text: bidi embeddings, overrides and isolates,
/// marks, and the Unicode line and paragraph separators.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Skips the rest of an escape sequence after ESC: CSI (`ESC [ ... final`), OSC and other
/// strings (`ESC ] ... BEL` or `ESC \`), or one character.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
        Some(']' | 'P' | '_' | '^' | 'X') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                    chars.next();
                    break;
                }
            }
        }
        _ => {}
    }
}

/// This machine's host name, for escalations' `host` (`localhost` when the system will not say).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `buf.len()` bytes into `buf`.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = memchr::memchr(0, &buf).unwrap_or(buf.len());
    if r != 0 || end == 0 {
        return "localhost".into();
    }
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::route::tests::event;

    /// A `first` for receiver `chat` of route `errors`, whose sample is `line`.
    pub(crate) fn escalation_of(line: &str) -> Escalation {
        let mut ev = event(line);
        ev.level = Some(Level::Error);
        ev.service = Some("api".into());
        ev.message = Some(line.lines().next().unwrap_or("").into());
        ev.fingerprint = Some(Fingerprint(0xab));
        let sample = Sample::from_event(&ev);
        Escalation {
            route: "errors".into(),
            receiver: "chat".into(),
            kind: Kind::First,
            group: Map::from_iter([("fingerprint".into(), Value::from("00000000000000ab"))]),
            fingerprint: sample.fingerprint,
            level: sample.level,
            service: sample.service.clone(),
            ci_run_id: Some("4711".into()),
            pattern: Some("java.exception".into()),
            message: sample.message.clone(),
            count: 1,
            suppressed: 0,
            first_seen: Timestamp::from_nanos(1_700_000_000_000_000_000),
            last_seen: Timestamp::from_nanos(1_700_000_000_000_000_000),
            loki_query: loki_query(&sample.labels, &sample.line),
            sample,
            context: vec!["INFO connecting to db".into()],
            host: "build-01".into(),
            mention: Vec::new(),
        }
    }

    fn escalation() -> Escalation {
        let mut e =
            escalation_of("ERROR db timeout after 30s\n\tat com.example.Db.query(Db.java:42)");
        e.message = Some("db timeout after 30s".into());
        e.sample.message = e.message.clone();
        e.ci_run_id = None;
        e.pattern = None;
        e.count = 5;
        e.suppressed = 4;
        e.first_seen = Timestamp::from_nanos(0);
        e.last_seen = Timestamp::from_nanos(60_000_000_000);
        e.context = vec!["INFO connecting".into()];
        e
    }

    #[test]
    fn ndjson_keys_come_in_spec_order() {
        let text = serde_json::to_string(&escalation()).unwrap();
        let mut at = 0;
        for key in KEYS {
            let found = text[at..]
                .find(&format!("\"{key}\":"))
                .unwrap_or_else(|| panic!("`{key}` missing or out of order in {text}"));
            at += found;
        }
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["kind"], "first");
        assert_eq!(v["first_seen"], "1970-01-01T00:00:00Z");
        for key in crate::event::KEYS {
            assert!(v["sample"].get(key).is_some(), "sample lacks {key}");
        }
    }

    #[test]
    fn escalation_reads_back_what_it_writes() {
        let e = escalation();
        let back: Escalation = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn a_route_mention_is_written_only_when_set_and_read_back() {
        let mut e = escalation();
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("\"mention\""), "{text}");
        e.mention = vec!["U012AB3CD".into()];
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.ends_with(",\"mention\":[\"U012AB3CD\"]}"), "{text}");
        let back: Escalation = serde_json::from_str(&text).unwrap();
        assert_eq!(back.mention, ["U012AB3CD"]);
    }

    #[test]
    fn sample_cuts_long_text_at_a_character_boundary() {
        let mut ev = event(&"é".repeat(5000));
        ev.message = Some("x".repeat(3000));
        let s = Sample::from_event(&ev);
        assert!(
            s.line.len() <= Sample::MAX_TEXT_BYTES && s.line.len() >= Sample::MAX_TEXT_BYTES - 1
        );
        assert!(s.line.chars().all(|c| c == 'é'));
        assert_eq!(s.message.unwrap().len(), Sample::MAX_TEXT_BYTES);
        let ctx: Vec<String> = (0..30)
            .map(|i| format!("{i} {}", "y".repeat(600)))
            .collect();
        let kept = Sample::trim_context(&ctx);
        assert_eq!(kept.len(), Sample::MAX_CONTEXT_LINES);
        assert!(kept[0].starts_with("10 ") && kept[0].len() == Sample::MAX_CONTEXT_LINE_BYTES);
    }

    #[test]
    fn stable_part_skips_times_numbers_and_ids() {
        assert_eq!(
            stable_part(
                "2026-11-22T10:00:00.123Z ERROR [build-svc] connection to 10.1.2.3:5432 refused ci_run_id=123456"
            ),
            "ERROR [build-svc] connection to"
        );
        assert_eq!(stable_part("db timeout after 30s"), "db timeout after");
        assert_eq!(
            stable_part("first line\nsecond line is longer"),
            "first line"
        );
    }

    #[test]
    fn stable_part_stops_at_a_word_end_within_the_limit() {
        let line = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu";
        let p = stable_part(line);
        assert!(p.len() <= FILTER_MAX_BYTES, "{p}");
        assert!(
            line.starts_with(p) && line[p.len()..].starts_with(' '),
            "{p}"
        );
    }

    #[test]
    fn stable_part_falls_back_to_the_line_start_when_every_word_varies() {
        assert_eq!(stable_part("12 34 56"), "12 34 56");
        let long = "9".repeat(100);
        assert_eq!(stable_part(&long).len(), FILTER_MAX_BYTES);
        assert_eq!(stable_part(""), "");
    }

    #[test]
    fn loki_query_escapes_quotes_and_backslashes() {
        let labels = BTreeMap::from([
            ("job".to_string(), "a\"b\\c".to_string()),
            ("k8s-ns".to_string(), "ci\nprod".to_string()),
        ]);
        assert_eq!(
            loki_query(&labels, "panic: can't open C:\\tmp \"x\" file now"),
            r#"{job="a\"b\\c", k8s_ns="ci\nprod"} |= "panic: can't open""#
        );
        let labels = BTreeMap::from([("1x".to_string(), "v".to_string())]);
        assert_eq!(loki_query(&labels, "boom"), r#"{_1x="v"} |= "boom""#);
    }

    #[test]
    fn loki_query_is_empty_without_labels() {
        assert_eq!(loki_query(&BTreeMap::new(), "boom"), "");
    }

    #[test]
    fn text_block_has_header_message_sample_and_context() {
        let text = escalation().render_text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with(
                "== first · route errors · level error · service api · count 5, suppressed 4"
            ),
            "{text}"
        );
        assert!(lines[0].ends_with("· to chat"), "{text}");
        assert!(
            text.contains("   group    fingerprint=00000000000000ab\n"),
            "{text}"
        );
        assert!(
            text.contains("   message  db timeout after 30s\n"),
            "{text}"
        );
        assert!(
            text.contains("   sample   | ERROR db timeout after 30s\n"),
            "{text}"
        );
        assert!(
            text.contains("            | \\tat com.example.Db.query(Db.java:42)\n"),
            "{text}"
        );
        assert!(text.contains("   context  | INFO connecting\n"), "{text}");
        assert!(
            text.contains("   loki     {job=\"jenkins\"} |= \"ERROR db timeout after\"\n"),
            "{text}"
        );
        assert!(text.ends_with("\n\n"));
    }

    #[test]
    fn log_content_cannot_break_the_text_block() {
        let mut e = escalation();
        e.sample.line = format!(
            "\u{1b}[31mred\u{1b}[0m \u{1b}]0;title\u{7}bell\rover \u{202e}rtl\u{2028}sep \u{85}nel{}\n{}",
            "x".repeat(500),
            (0..20)
                .map(|i| format!("line {i}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        e.message = Some("\u{1b}[2Jcleared\rinjected\nsecond".into());
        e.service = Some("api\u{7}".into());
        e.context = (0..9).map(|i| format!("ctx {i}\u{1b}[1m")).collect();
        let text = e.render_text();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'),
            "{text:?}"
        );
        for line in text.lines().filter(|l| !l.is_empty()) {
            assert!(
                line.starts_with("== ") || line.starts_with("   "),
                "escaped the block: {line:?}"
            );
            assert!(line.chars().count() < 260, "uncapped: {line:?}");
        }
        assert!(
            text.contains("red bell\\u{d}over \\u{202e}rtl\\u{2028}sep \\u{85}nel"),
            "{text}"
        );
        assert!(
            text.contains("   message  cleared\\u{d}injected\n"),
            "{text}"
        );
        assert!(text.contains("service api\\u{7}"), "{text}");
        assert!(text.contains("| (13 more lines)"), "{text}");
        assert!(
            text.contains("   context  | (4 earlier lines)\n            | ctx 4\n"),
            "{text}"
        );
        assert!(text.contains('…'));
    }
}
