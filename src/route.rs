//! Routes: which events escalate, to which receivers, grouped by what (SPEC §2 `[[route]]`).
//!
//! Owns the validated route types ([`Route`], [`Matcher`], [`Cond`], [`Inhibit`]), the parsing
//! of one match condition from its TOML value (with a "how to fix" text), route selection
//! ([`matching`]) and group keys ([`GroupKey`]).
//!
//! Must not: read config files (the config layer owns spans and diagnostics and calls
//! [`Cond::parse`] per key), keep per-group state (that is [`crate::window`]), do I/O, or look
//! at the clock.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use regex::Regex;
use serde_json::{Map, Value};

use crate::event::{Event, Level};
use crate::pattern::{level, level_name};

/// `window`: a group's dedup window, from its first event.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10 * 60);
/// `threshold`: events in a window before the first notification.
pub const DEFAULT_THRESHOLD: u64 = 1;
/// `repeat_interval`: how long a notified group stays quiet while it keeps firing.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// `group_wait`: how long a first notification is held to gather a burst.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::ZERO;
/// `max_groups`: live groups per route; beyond it the least recently seen is evicted.
pub const DEFAULT_MAX_GROUPS: usize = 10_000;
/// `group_by` when the route does not say.
pub const DEFAULT_GROUP_BY: &str = "fingerprint";
/// Preceding lines of the same stream in an escalation's `context`.
pub const DEFAULT_CONTEXT_LINES: usize = 10;

/// One `[[route]]`, validated.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: Arc<str>,
    /// All conditions must hold.
    pub matcher: Matcher,
    pub receivers: Vec<Arc<str>>,
    /// Event keys: `fingerprint`, `ci_run_id`, `service`, `level`, `pattern`, `source`, `path`,
    /// `message`, or a field name (looked up in `fields`, then in the source's `labels`).
    pub group_by: Vec<String>,
    pub window: Duration,
    pub threshold: u64,
    pub repeat_interval: Duration,
    pub group_wait: Duration,
    pub max_groups: usize,
    /// `continue = true`: matching goes on to the next routes.
    pub continue_: bool,
    pub inhibit: Vec<Inhibit>,
    /// How many preceding lines of the stream an escalation carries as `context`.
    pub context_lines: usize,
    /// `mention`: ids the chat receivers of this route mention, besides their own.
    pub mention: Vec<String>,
}

impl Route {
    /// A route with every optional key at its default.
    pub fn new(name: &str, matcher: Matcher, receivers: Vec<Arc<str>>) -> Route {
        Route {
            name: name.into(),
            matcher,
            receivers,
            group_by: vec![DEFAULT_GROUP_BY.to_string()],
            window: DEFAULT_WINDOW,
            threshold: DEFAULT_THRESHOLD,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            group_wait: DEFAULT_GROUP_WAIT,
            max_groups: DEFAULT_MAX_GROUPS,
            continue_: false,
            inhibit: Vec::new(),
            context_lines: DEFAULT_CONTEXT_LINES,
            mention: Vec::new(),
        }
    }

    /// Checks the values that no type rules out; the text says how to fix the first problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.window.is_zero() {
            return Err("`window` must be longer than 0s; e.g. `window = \"10m\"`".into());
        }
        if self.threshold == 0 {
            return Err("`threshold` must be at least 1 (1 = notify on the first event)".into());
        }
        if self.repeat_interval.is_zero() {
            return Err(
                "`repeat_interval` must be longer than 0s; e.g. `repeat_interval = \"1h\"`".into(),
            );
        }
        if self.group_wait >= self.window {
            return Err(format!(
                "`group_wait` ({}) must be shorter than `window` ({}): a burst is gathered inside one window",
                humantime::format_duration(self.group_wait),
                humantime::format_duration(self.window)
            ));
        }
        if self.max_groups == 0 {
            return Err("`max_groups` must be at least 1".into());
        }
        if self.group_by.is_empty() {
            return Err(
                "`group_by` is empty; name at least one key, e.g. `group_by = [\"fingerprint\"]`"
                    .into(),
            );
        }
        Ok(())
    }

    /// The group an event falls in on this route.
    pub fn group_key(&self, ev: &Event) -> GroupKey {
        let mut buf = KeyBuf::default();
        buf.fill(&self.group_by, ev);
        buf.to_key(&self.group_by)
    }
}

/// Inhibition: once an event matching `source` has been notified on the route, later events
/// matching `target` with the same values for every `equal` key are counted, not notified,
/// until the source group's window closes.
#[derive(Debug, Clone)]
pub struct Inhibit {
    pub source: Matcher,
    pub target: Matcher,
    pub equal: Vec<String>,
}

impl Inhibit {
    /// Parses `{ source = {...}, target = {...}, equal = ["ci_run_id"] }`.
    pub fn from_table(table: &toml::Table) -> Result<Inhibit, String> {
        let mut source = None;
        let mut target = None;
        let mut equal = Vec::new();
        for (k, v) in table {
            match (k.as_str(), v) {
                ("source", toml::Value::Table(t)) => source = Some(Matcher::from_table(t)?),
                ("target", toml::Value::Table(t)) => target = Some(Matcher::from_table(t)?),
                ("equal", toml::Value::Array(items)) => {
                    for item in items {
                        match item.as_str() {
                            Some(s) => equal.push(s.to_string()),
                            None => {
                                return Err(format!(
                                    "`equal` lists key names as strings, e.g. `equal = [\"ci_run_id\"]`; got `{item}`"
                                ));
                            }
                        }
                    }
                }
                ("source" | "target", _) => {
                    return Err(format!(
                        "`{k}` is a table of conditions, e.g. `{k} = {{ pattern = \"gitlab.job-failed\" }}`"
                    ));
                }
                ("equal", _) => {
                    return Err(
                        "`equal` is a list of key names, e.g. `equal = [\"ci_run_id\"]`".into(),
                    );
                }
                _ => {
                    return Err(format!(
                        "unknown key `{k}` in an inhibit rule; the keys are `source`, `target` and `equal`"
                    ));
                }
            }
        }
        match (source, target) {
            (Some(source), Some(target)) => Ok(Inhibit {
                source,
                target,
                equal,
            }),
            _ => Err("an inhibit rule needs both `source` and `target` tables".into()),
        }
    }
}

/// What an event is tested on, by name. Anything that is not one of the event's own keys is a
/// field: looked up in `fields`, then in the source's `labels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Level,
    Service,
    Pattern,
    CiRunId,
    Source,
    Path,
    Message,
    Fingerprint,
    Field(String),
}

impl Key {
    pub fn parse(name: &str) -> Key {
        match name {
            "level" => Key::Level,
            "service" => Key::Service,
            "pattern" => Key::Pattern,
            "ci_run_id" => Key::CiRunId,
            "source" => Key::Source,
            "path" => Key::Path,
            "message" => Key::Message,
            "fingerprint" => Key::Fingerprint,
            other => Key::Field(other.to_string()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Key::Level => "level",
            Key::Service => "service",
            Key::Pattern => "pattern",
            Key::CiRunId => "ci_run_id",
            Key::Source => "source",
            Key::Path => "path",
            Key::Message => "message",
            Key::Fingerprint => "fingerprint",
            Key::Field(name) => name,
        }
    }

    /// The key's value on `ev`; `None` when absent (a JSON `null` field is absent).
    pub fn get<'e, E: Keyed + ?Sized>(&self, ev: &'e E) -> Option<Val<'e>> {
        value_of(self.name(), ev)
    }
}

/// The value of the key called `name` (see [`Key`]), without building a [`Key`].
pub fn value_of<'e, E: Keyed + ?Sized>(name: &str, ev: &'e E) -> Option<Val<'e>> {
    match name {
        "level" => ev.level().map(Val::Level),
        "service" => ev.service().map(Val::Str),
        "pattern" => ev.pattern().map(Val::Str),
        "ci_run_id" => ev.ci_run_id().map(Val::Str),
        "source" => Some(Val::Str(ev.source())),
        "path" => ev.path().map(Val::Str),
        "message" => ev.message().map(Val::Str),
        "fingerprint" => ev.fingerprint().map(Val::Fingerprint),
        field => match ev.fields().get(field) {
            Some(Value::Null) | None => ev.label(field).map(Val::Str),
            Some(v) => Some(Val::Json(v)),
        },
    }
}

/// What routes look at in an event; implemented by [`Event`] and by an escalation's sample, so
/// that a notified sample can be tested against inhibit rules after the event itself is gone.
pub trait Keyed {
    fn level(&self) -> Option<Level>;
    fn service(&self) -> Option<&str>;
    fn pattern(&self) -> Option<&str>;
    fn ci_run_id(&self) -> Option<&str>;
    fn source(&self) -> &str;
    fn path(&self) -> Option<&str>;
    fn message(&self) -> Option<&str>;
    fn fingerprint(&self) -> Option<u64>;
    fn fields(&self) -> &Map<String, Value>;
    fn label(&self, name: &str) -> Option<&str>;
}

/// Implements [`Keyed`] for a type with the event's fields (`Event`, `Sample`).
macro_rules! impl_keyed {
    ($t:ty) => {
        impl $crate::route::Keyed for $t {
            fn level(&self) -> Option<$crate::event::Level> {
                self.level
            }
            fn service(&self) -> Option<&str> {
                self.service.as_deref()
            }
            fn pattern(&self) -> Option<&str> {
                self.pattern.as_deref()
            }
            fn ci_run_id(&self) -> Option<&str> {
                self.ci_run_id.as_deref()
            }
            fn source(&self) -> &str {
                &self.source
            }
            fn path(&self) -> Option<&str> {
                self.path.as_deref()
            }
            fn message(&self) -> Option<&str> {
                self.message.as_deref()
            }
            fn fingerprint(&self) -> Option<u64> {
                self.fingerprint.map(|f| f.0)
            }
            fn fields(&self) -> &serde_json::Map<String, serde_json::Value> {
                &self.fields
            }
            fn label(&self, name: &str) -> Option<&str> {
                self.labels.get(name).map(String::as_str)
            }
        }
    };
}
pub(crate) use impl_keyed;

impl_keyed!(Event);

/// A key's value, borrowed from the event.
#[derive(Debug, Clone, Copy)]
pub enum Val<'e> {
    Str(&'e str),
    Level(Level),
    Fingerprint(u64),
    Json(&'e Value),
}

impl<'e> Val<'e> {
    /// The value when it is a string (JSON strings too), borrowed.
    fn as_str(&self) -> Option<&'e str> {
        match *self {
            Val::Str(s) => Some(s),
            Val::Json(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The value as text: level names, 16 hex digits, JSON strings unquoted, other JSON as JSON.
    pub fn text(&self) -> Cow<'_, str> {
        if let Some(s) = self.as_str() {
            return Cow::Borrowed(s);
        }
        match *self {
            Val::Str(s) => Cow::Borrowed(s),
            Val::Level(l) => Cow::Borrowed(level_name(l)),
            Val::Fingerprint(f) => Cow::Owned(format!("{f:016x}")),
            Val::Json(v) => Cow::Owned(v.to_string()),
        }
    }

    /// Appends the value as [`Val::text`] gives it, without allocating.
    pub fn write(&self, out: &mut String) {
        if let Some(s) = self.as_str() {
            return out.push_str(s);
        }
        match *self {
            Val::Str(s) => out.push_str(s),
            Val::Level(l) => out.push_str(level_name(l)),
            // Writing to a String cannot fail.
            Val::Fingerprint(f) => {
                let _ = write!(out, "{f:016x}");
            }
            Val::Json(v) => {
                let _ = write!(out, "{v}");
            }
        }
    }

    fn eq_text(&self, text: &str) -> bool {
        if let Some(s) = self.as_str() {
            return s == text;
        }
        match *self {
            Val::Str(s) => s == text,
            Val::Level(l) => level_name(l) == text,
            Val::Fingerprint(f) => u64::from_str_radix(text, 16) == Ok(f) && text.len() == 16,
            Val::Json(_) => self.text() == text,
        }
    }
}

/// One condition on one key.
#[derive(Debug, Clone)]
pub enum Cond {
    /// `level = "error"`
    LevelEq(Level),
    /// `level = ">=warn"`
    LevelAtLeast(Level),
    /// `service = "api"`
    Exact(String),
    /// `service = ["api", "build"]`
    OneOf(Vec<String>),
    /// `service = "~^build-"`: an unanchored search; anchor with `^` and `$`.
    Regex(Regex),
    /// `pattern = "gitlab.*"`
    Glob(GlobMatcher),
    /// `ci_run_id = true` (present) or `false` (absent), for any key.
    Present(bool),
}

const LEVELS: &str = "trace, debug, info, notice, warn, error, critical";

impl Cond {
    /// Parses the condition on `key` written as `value` in a `match` table. The error is a
    /// "how to fix" text without the key's location, which the config layer adds.
    pub fn parse(key: &str, value: &toml::Value) -> Result<Cond, String> {
        match value {
            toml::Value::Boolean(b) => Ok(Cond::Present(*b)),
            toml::Value::String(s) => Cond::parse_text(key, s),
            toml::Value::Array(items) => {
                if items.is_empty() {
                    return Err(format!(
                        "`{key} = []` matches nothing; list at least one value, or remove `{key}`"
                    ));
                }
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    let text = match item {
                        toml::Value::String(s) if key == "level" => {
                            level_name(parse_level(s)?).to_string()
                        }
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Integer(i) if key != "level" => i.to_string(),
                        other => {
                            return Err(format!(
                                "`{key}` lists values to match exactly, as strings; `{other}` is not one (regexes and `>=` are not allowed in a list: write one `~a|b` regex instead)"
                            ));
                        }
                    };
                    values.push(text);
                }
                Ok(Cond::OneOf(values))
            }
            toml::Value::Integer(i) if !matches!(key, "level" | "pattern") => {
                Ok(Cond::Exact(i.to_string()))
            }
            other => Err(format!(
                "`{key} = {other}` is not a condition; write a string (`\"value\"`, `\"~regex\"`{}), a list of strings, or true/false (present/absent)",
                match key {
                    "level" => ", `\">=warn\"`",
                    "pattern" => ", a glob like `\"gitlab.*\"`",
                    _ => "",
                }
            )),
        }
    }

    fn parse_text(key: &str, text: &str) -> Result<Cond, String> {
        if let Some(re) = text.strip_prefix('~') {
            if re.is_empty() {
                return Err(format!(
                    "`{key} = \"~\"` has no regex after `~`; write one (e.g. `\"~^build-\"`), or use `{key} = true` for \"present\""
                ));
            }
            return Regex::new(re).map(Cond::Regex).map_err(|e| {
                format!(
                    "`{key} = \"{text}\"`: the text after `~` is not a valid regex: {e}\n  fix the regex, or drop the `~` to match the text exactly"
                )
            });
        }
        match key {
            "level" => {
                if let Some(l) = text.strip_prefix(">=") {
                    return parse_level(l.trim()).map(Cond::LevelAtLeast);
                }
                if text.starts_with(['<', '>', '=', '!']) {
                    return Err(format!(
                        "`level = \"{text}\"`: only `>=` is supported; write `\">=warn\"` (warn and above) or `\"warn\"` (exactly warn)"
                    ));
                }
                parse_level(text).map(Cond::LevelEq)
            }
            "pattern" => Glob::new(text)
                .map(|g| Cond::Glob(g.compile_matcher()))
                .map_err(|e| {
                    format!(
                        "`pattern = \"{text}\"` is not a valid glob: {}\n  e.g. `\"gitlab.*\"`; for a regex write `\"~^gitlab\\\\.\"`",
                        e.kind()
                    )
                }),
            _ => Ok(Cond::Exact(text.to_string())),
        }
    }

    /// Whether a key whose value is `v` (`None`: absent) satisfies the condition.
    pub fn matches(&self, v: Option<Val<'_>>) -> bool {
        let v = match (self, v) {
            (Cond::Present(want), v) => return v.is_some() == *want,
            (_, None) => return false,
            (_, Some(v)) => v,
        };
        match self {
            Cond::LevelEq(want) => match v {
                Val::Level(l) => l == *want,
                other => other.eq_text(level_name(*want)),
            },
            Cond::LevelAtLeast(min) => match v {
                Val::Level(l) => l >= *min,
                other => level::parse(&other.text()).is_some_and(|l| l >= *min),
            },
            Cond::Exact(s) => v.eq_text(s),
            Cond::OneOf(list) => list.iter().any(|s| v.eq_text(s)),
            Cond::Regex(re) => re.is_match(&v.text()),
            Cond::Glob(g) => g.is_match(&*v.text()),
            Cond::Present(_) => true,
        }
    }
}

/// A level word as written in a route. Aliases that patterns accept (`warning`, `fatal`) are
/// fine; numbers are not, because `level = "3"` reads as a typo more than as syslog's error.
fn parse_level(text: &str) -> Result<Level, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        if let Some(l) = level::parse(text) {
            return Ok(l);
        }
    }
    Err(format!(
        "unknown level `{text}`; use one of {LEVELS}, optionally as `\">=warn\"` for \"warn and above\""
    ))
}

/// All conditions of a `match` table; an empty matcher matches every event.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    conds: Vec<(Key, Cond)>,
}

impl Matcher {
    pub fn new(conds: Vec<(Key, Cond)>) -> Matcher {
        Matcher { conds }
    }

    /// Parses a whole `match = { ... }` table; the error names the key at fault.
    pub fn from_table(table: &toml::Table) -> Result<Matcher, String> {
        let mut conds = Vec::with_capacity(table.len());
        for (key, value) in table {
            conds.push((Key::parse(key), Cond::parse(key, value)?));
        }
        Ok(Matcher { conds })
    }

    pub fn conds(&self) -> &[(Key, Cond)] {
        &self.conds
    }

    pub fn matches<E: Keyed + ?Sized>(&self, ev: &E) -> bool {
        self.conds.iter().all(|(k, c)| c.matches(k.get(ev)))
    }
}

/// The routes an event goes to, in order: the first matching route, and after it the next
/// matching ones for as long as the route just taken has `continue = true`.
pub fn matching<'a>(routes: &'a [Route], ev: &Event) -> impl Iterator<Item = &'a Route> {
    matching_indices(routes, ev).map(move |i| &routes[i])
}

/// [`matching`], as indices into `routes` (what [`crate::window::Windows::observe`] takes).
pub fn matching_indices(routes: &[Route], ev: &Event) -> impl Iterator<Item = usize> {
    let mut stopped = false;
    routes.iter().enumerate().filter_map(move |(i, r)| {
        if stopped || !r.matcher.matches(ev) {
            return None;
        }
        stopped = !r.continue_;
        Some(i)
    })
}

/// A group's identity: the route's `group_by` keys with the event's values, in order. An absent
/// value is distinct from an empty string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pairs: Box<[(Arc<str>, KeyValue)]>,
}

/// One key's value in a group key: `None` when the event does not have it.
pub(crate) type KeyValue = Option<Box<str>>;

impl GroupKey {
    pub fn new<K: Into<Arc<str>>, V: Into<Box<str>>>(
        pairs: impl IntoIterator<Item = (K, Option<V>)>,
    ) -> GroupKey {
        GroupKey {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.map(Into::into)))
                .collect(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.pairs.iter().map(|(k, v)| (&**k, v.as_deref()))
    }

    pub fn get(&self, key: &str) -> Option<Option<&str>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// `{"fingerprint": "00000000000000ab", "ci_run_id": null}`: what escalations carry as `group`.
    pub fn to_json(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| {
                let v = v.map_or(Value::Null, |v| Value::String(v.to_string()));
                (k.to_string(), v)
            })
            .collect()
    }

    /// Reads back what [`GroupKey::to_json`] wrote, for the keys `names` in that order.
    pub fn from_json(names: &[String], group: &Map<String, Value>) -> Option<GroupKey> {
        let mut pairs = Vec::with_capacity(names.len());
        for name in names {
            let v = match group.get(name)? {
                Value::Null => None,
                Value::String(s) => Some(s.as_str()),
                _ => return None,
            };
            pairs.push((name.as_str(), v));
        }
        Some(GroupKey::new(pairs))
    }
}

/// A group key's values for one event, written into one reused buffer: looking up an existing
/// group costs no allocation.
#[derive(Debug, Default)]
pub(crate) struct KeyBuf {
    text: String,
    /// Byte range of each value in `text`; `None` when absent.
    spans: Vec<Option<(usize, usize)>>,
}

impl KeyBuf {
    pub(crate) fn fill<E: Keyed + ?Sized>(&mut self, names: &[String], ev: &E) {
        self.text.clear();
        self.spans.clear();
        for name in names {
            let span = value_of(name, ev).map(|v| {
                let start = self.text.len();
                v.write(&mut self.text);
                (start, self.text.len())
            });
            self.spans.push(span);
        }
    }

    /// The values of an existing key, to look its group up again.
    pub(crate) fn load(&mut self, key: &GroupKey) {
        self.text.clear();
        self.spans.clear();
        for (_, v) in key.iter() {
            let span = v.map(|v| {
                let start = self.text.len();
                self.text.push_str(v);
                (start, self.text.len())
            });
            self.spans.push(span);
        }
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = Option<&str>> {
        self.spans.iter().map(|s| s.map(|(a, b)| &self.text[a..b]))
    }

    /// Stable within a process. The layout (which values are present, and their lengths)
    /// seeds one pass over the text, so an absent value, an empty one and a moved boundary
    /// (`"ab" "c"` against `"a" "bc"`) all hash differently.
    pub(crate) fn hash(&self) -> u64 {
        let mut seed = 0x517c_c1b7_2722_0a95_u64;
        for span in &self.spans {
            let tag = span.map_or(0, |(a, b)| (b - a) as u64 + 1);
            seed = (seed ^ tag)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(29);
        }
        xxhash_rust::xxh3::xxh3_64_with_seed(self.text.as_bytes(), seed)
    }

    pub(crate) fn eq_key(&self, key: &GroupKey) -> bool {
        key.pairs.len() == self.spans.len()
            && key
                .pairs
                .iter()
                .zip(self.values())
                .all(|((_, a), b)| a.as_deref() == b)
    }

    pub(crate) fn eq_values(&self, values: &[KeyValue]) -> bool {
        values.len() == self.spans.len()
            && values
                .iter()
                .zip(self.values())
                .all(|(a, b)| a.as_deref() == b)
    }

    pub(crate) fn any_absent(&self) -> bool {
        self.spans.iter().any(Option::is_none)
    }

    pub(crate) fn to_values(&self) -> Box<[KeyValue]> {
        self.values().map(|v| v.map(Box::from)).collect()
    }

    pub(crate) fn to_key(&self, names: &[String]) -> GroupKey {
        GroupKey::new(names.iter().map(String::as_str).zip(self.values()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::{Fingerprint, Origin, Record, Timestamp};
    use std::collections::BTreeMap;

    pub(crate) fn event(line: &str) -> Event {
        let labels = BTreeMap::from([("job".to_string(), "jenkins".to_string())]);
        let origin = Origin::new("ci".into(), Some("/logs/a.log".into()), Arc::new(labels));
        Event::from_record(
            Record::text(0, line.into()),
            &origin,
            Timestamp::from_nanos(0),
        )
    }

    fn cond(key: &str, toml_value: &str) -> Result<Cond, String> {
        let table: toml::Table = toml::from_str(&format!("v = {toml_value}")).unwrap();
        Cond::parse(key, &table["v"])
    }

    fn matcher(table: &str) -> Matcher {
        Matcher::from_table(&toml::from_str(table).unwrap()).unwrap()
    }

    fn error_event() -> Event {
        let mut ev = event("ERROR db timeout");
        ev.level = Some(Level::Error);
        ev.service = Some("api".into());
        ev.pattern = Some("gitlab.job-failed".into());
        ev.ci_run_id = Some("4711".into());
        ev.message = Some("db timeout".into());
        ev.fingerprint = Some(Fingerprint(0xab));
        ev.fields.insert("exit_code".into(), Value::from(137));
        ev.fields.insert("stage".into(), Value::from("test"));
        ev
    }

    #[test]
    fn level_exact_matches_only_that_level() {
        let c = cond("level", "\"error\"").unwrap();
        assert!(matches!(c, Cond::LevelEq(Level::Error)));
        assert!(c.matches(Some(Val::Level(Level::Error))));
        assert!(!c.matches(Some(Val::Level(Level::Critical))));
        assert!(!c.matches(None));
    }

    #[test]
    fn level_at_least_matches_that_level_and_above() {
        let c = cond("level", "\">=warn\"").unwrap();
        assert!(matches!(c, Cond::LevelAtLeast(Level::Warn)));
        assert!(c.matches(Some(Val::Level(Level::Warn))));
        assert!(c.matches(Some(Val::Level(Level::Critical))));
        assert!(!c.matches(Some(Val::Level(Level::Info))));
        assert!(
            !c.matches(None),
            "an event without a level is below every level"
        );
    }

    #[test]
    fn level_aliases_are_accepted_and_normalized() {
        assert!(matches!(
            cond("level", "\"warning\"").unwrap(),
            Cond::LevelEq(Level::Warn)
        ));
        let Cond::OneOf(list) = cond("level", "[\"fatal\", \"err\"]").unwrap() else {
            panic!("a list is one-of");
        };
        assert_eq!(list, ["critical", "error"]);
    }

    #[test]
    fn unknown_level_says_which_levels_exist() {
        let e = cond("level", "\"loud\"").unwrap_err();
        assert!(
            e.contains("unknown level `loud`") && e.contains("critical"),
            "{e}"
        );
        let e = cond("level", "\"3\"").unwrap_err();
        assert!(e.contains("unknown level `3`"), "{e}");
        let e = cond("level", "\">= \"").unwrap_err();
        assert!(e.contains("unknown level ``"), "{e}");
    }

    #[test]
    fn level_comparisons_other_than_at_least_explain_the_two_forms() {
        for bad in ["\">warn\"", "\"<=error\"", "\"==error\"", "\"!=info\""] {
            let e = cond("level", bad).unwrap_err();
            assert!(e.contains("only `>=` is supported"), "{bad}: {e}");
        }
    }

    #[test]
    fn plain_string_is_exact_for_ordinary_keys() {
        let c = cond("service", "\"api\"").unwrap();
        assert!(c.matches(Some(Val::Str("api"))));
        assert!(!c.matches(Some(Val::Str("api-gw"))));
        assert!(!c.matches(Some(Val::Str("ap*"))));
        assert!(
            matches!(cond("service", "\"ap*\"").unwrap(), Cond::Exact(s) if s == "ap*"),
            "only `pattern` takes globs"
        );
    }

    #[test]
    fn list_is_one_of() {
        let c = cond("service", "[\"api\", \"build\"]").unwrap();
        assert!(c.matches(Some(Val::Str("build"))));
        assert!(!c.matches(Some(Val::Str("deploy"))));
        assert!(!c.matches(None));
    }

    #[test]
    fn empty_list_is_refused_because_it_matches_nothing() {
        let e = cond("service", "[]").unwrap_err();
        assert!(e.contains("matches nothing"), "{e}");
    }

    #[test]
    fn list_items_must_be_plain_strings() {
        let e = cond("service", "[\"api\", true]").unwrap_err();
        assert!(e.contains("`true` is not one"), "{e}");
        let e = cond("level", "[3]").unwrap_err();
        assert!(e.contains("is not one"), "{e}");
    }

    #[test]
    fn tilde_is_an_unanchored_regex() {
        let c = cond("service", "\"~^build-\"").unwrap();
        assert!(c.matches(Some(Val::Str("build-svc"))));
        assert!(!c.matches(Some(Val::Str("pre-build-svc"))));
        let c = cond("message", "\"~timeout\"").unwrap();
        assert!(c.matches(Some(Val::Str("db timeout after 30s"))));
    }

    #[test]
    fn bad_regex_error_shows_the_regex_error_and_the_way_out() {
        let e = cond("service", "\"~(build\"").unwrap_err();
        assert!(e.contains("not a valid regex"), "{e}");
        assert!(e.contains("unclosed group"), "{e}");
        assert!(e.contains("drop the `~`"), "{e}");
        let e = cond("service", "\"~\"").unwrap_err();
        assert!(e.contains("no regex after `~`"), "{e}");
    }

    #[test]
    fn pattern_plain_string_is_a_glob() {
        let c = cond("pattern", "\"gitlab.*\"").unwrap();
        assert!(matches!(c, Cond::Glob(_)));
        assert!(c.matches(Some(Val::Str("gitlab.job-failed"))));
        assert!(!c.matches(Some(Val::Str("jenkins.failed"))));
        let exact = cond("pattern", "\"gitlab.job-failed\"").unwrap();
        assert!(exact.matches(Some(Val::Str("gitlab.job-failed"))));
        assert!(!exact.matches(Some(Val::Str("gitlab.job-failed2"))));
    }

    #[test]
    fn bad_glob_error_suggests_the_glob_and_regex_forms() {
        let e = cond("pattern", "\"gitlab.[\"").unwrap_err();
        assert!(e.contains("not a valid glob"), "{e}");
        assert!(e.contains("\"gitlab.*\""), "{e}");
    }

    #[test]
    fn pattern_takes_a_regex_with_tilde() {
        let c = cond("pattern", "\"~^(gitlab|jenkins)\\\\.\"").unwrap();
        assert!(c.matches(Some(Val::Str("jenkins.failed"))));
    }

    #[test]
    fn bool_means_present_or_absent_for_any_key() {
        for key in ["ci_run_id", "service", "level", "pattern", "exit_code"] {
            let yes = cond(key, "true").unwrap();
            let no = cond(key, "false").unwrap();
            assert!(
                yes.matches(Some(Val::Str("x"))) && !yes.matches(None),
                "{key}"
            );
            assert!(no.matches(None) && !no.matches(Some(Val::Str(""))), "{key}");
        }
    }

    #[test]
    fn other_types_say_what_a_condition_looks_like() {
        let e = cond("level", "1.5").unwrap_err();
        assert!(
            e.contains("is not a condition") && e.contains(">=warn"),
            "{e}"
        );
        let e = cond("pattern", "{ a = 1 }").unwrap_err();
        assert!(e.contains("glob"), "{e}");
        let e = cond("level", "4").unwrap_err();
        assert!(e.contains("is not a condition"), "{e}");
    }

    #[test]
    fn field_conditions_compare_json_values_as_text() {
        let ev = error_event();
        assert!(matcher("exit_code = 137").matches(&ev));
        assert!(matcher("exit_code = \"137\"").matches(&ev));
        assert!(matcher("exit_code = [\"1\", \"137\"]").matches(&ev));
        assert!(matcher("exit_code = \"~^1\"").matches(&ev));
        assert!(matcher("stage = \"test\"").matches(&ev));
        assert!(!matcher("stage = \"build\"").matches(&ev));
        assert!(matcher("missing = false").matches(&ev));
    }

    #[test]
    fn fields_fall_back_to_source_labels() {
        let ev = error_event();
        assert!(matcher("job = \"jenkins\"").matches(&ev));
        assert!(matcher("job = true").matches(&ev));
    }

    #[test]
    fn null_field_is_absent() {
        let mut ev = error_event();
        ev.fields.insert("stage".into(), Value::Null);
        assert!(matcher("stage = false").matches(&ev));
    }

    #[test]
    fn matcher_needs_every_condition() {
        let ev = error_event();
        assert!(
            matcher(
                "level = \">=error\"\nservice = [\"api\", \"build\"]\npattern = \"gitlab.*\"\nci_run_id = true"
            )
            .matches(&ev)
        );
        assert!(!matcher("level = \">=error\"\nservice = \"build\"").matches(&ev));
        assert!(
            Matcher::default().matches(&ev),
            "an empty match takes everything"
        );
    }

    #[test]
    fn event_keys_are_matched_by_name() {
        let ev = error_event();
        assert!(matcher("source = \"ci\"").matches(&ev));
        assert!(matcher("path = \"~a\\\\.log$\"").matches(&ev));
        assert!(matcher("message = \"db timeout\"").matches(&ev));
        assert!(matcher("ci_run_id = \"4711\"").matches(&ev));
        assert!(matcher("fingerprint = \"00000000000000ab\"").matches(&ev));
        assert!(!matcher("fingerprint = \"ab\"").matches(&ev));
    }

    #[test]
    fn matcher_error_names_the_key() {
        let t: toml::Table = toml::from_str("level = \"loud\"").unwrap();
        let e = Matcher::from_table(&t).unwrap_err();
        assert!(e.contains("unknown level `loud`"), "{e}");
    }

    fn route(name: &str, m: &str, continue_: bool) -> Route {
        let mut r = Route::new(name, matcher(m), vec!["chat".into()]);
        r.continue_ = continue_;
        r
    }

    #[test]
    fn first_matching_route_wins() {
        let routes = [
            route("infos", "level = \"info\"", false),
            route("errors", "level = \">=error\"", false),
            route("all", "", false),
        ];
        let names: Vec<_> = matching(&routes, &error_event())
            .map(|r| &*r.name)
            .collect();
        assert_eq!(names, ["errors"]);
    }

    #[test]
    fn no_route_matches_an_event_no_condition_takes() {
        let routes = [route("infos", "level = \"info\"", false)];
        assert_eq!(matching(&routes, &error_event()).count(), 0);
    }

    #[test]
    fn continue_goes_on_to_the_next_matching_routes_only() {
        let routes = [
            route("audit", "", true),
            route("infos", "level = \"info\"", false),
            route("errors", "level = \">=error\"", true),
            route("api", "service = \"api\"", false),
            route("all", "", false),
        ];
        let names: Vec<_> = matching(&routes, &error_event())
            .map(|r| &*r.name)
            .collect();
        assert_eq!(names, ["audit", "errors", "api"]);
        let idx: Vec<_> = matching_indices(&routes, &error_event()).collect();
        assert_eq!(idx, [0, 2, 3]);
    }

    #[test]
    fn group_key_keeps_order_and_tells_absent_from_empty() {
        let mut r = Route::new("r", Matcher::default(), vec![]);
        r.group_by = vec!["ci_run_id".into(), "service".into(), "stage".into()];
        let mut ev = error_event();
        ev.service = Some(String::new());
        let k = r.group_key(&ev);
        let pairs: Vec<_> = k.iter().collect();
        assert_eq!(
            pairs,
            [
                ("ci_run_id", Some("4711")),
                ("service", Some("")),
                ("stage", Some("test"))
            ]
        );
        ev.service = None;
        let absent = r.group_key(&ev);
        assert_ne!(k, absent);
        assert_eq!(absent.get("service"), Some(None));
        assert_eq!(
            GroupKey::from_json(&r.group_by, &absent.to_json()),
            Some(absent)
        );
    }

    #[test]
    fn key_buffer_hash_tells_absent_from_empty() {
        let names = vec!["service".to_string()];
        let mut ev = error_event();
        let mut a = KeyBuf::default();
        ev.service = None;
        a.fill(&names, &ev);
        let mut b = KeyBuf::default();
        ev.service = Some(String::new());
        b.fill(&names, &ev);
        assert_ne!(a.hash(), b.hash());
        assert!(!a.eq_key(&b.to_key(&names)));
        assert!(b.eq_key(&b.to_key(&names)));
        let two = vec!["service".to_string(), "stage".to_string()];
        ev.service = Some("ab".into());
        ev.fields.insert("stage".into(), Value::from("c"));
        a.fill(&two, &ev);
        ev.service = Some("a".into());
        ev.fields.insert("stage".into(), Value::from("bc"));
        b.fill(&two, &ev);
        assert_ne!(a.hash(), b.hash(), "moved boundary");
    }

    #[test]
    fn fingerprint_group_value_is_sixteen_hex_digits() {
        let r = Route::new("r", Matcher::default(), vec![]);
        let k = r.group_key(&error_event());
        assert_eq!(k.get("fingerprint"), Some(Some("00000000000000ab")));
    }

    #[test]
    fn inhibit_rule_parses_and_explains_its_keys() {
        let t: toml::Table = toml::from_str(
            "source = { pattern = \"gitlab.job-failed\" }\ntarget = { level = \">=error\" }\nequal = [\"ci_run_id\"]",
        )
        .unwrap();
        let rule = Inhibit::from_table(&t).unwrap();
        assert_eq!(rule.equal, ["ci_run_id"]);
        let t: toml::Table = toml::from_str("source = {}\nequals = []").unwrap();
        let e = Inhibit::from_table(&t).unwrap_err();
        assert!(e.contains("unknown key `equals`"), "{e}");
        let t: toml::Table = toml::from_str("source = {}").unwrap();
        assert!(Inhibit::from_table(&t).unwrap_err().contains("both"));
        let t: toml::Table = toml::from_str("source = \"x\"\ntarget = {}").unwrap();
        assert!(Inhibit::from_table(&t).unwrap_err().contains("table"));
    }

    #[test]
    fn validate_names_the_key_to_fix() {
        let ok = Route::new("r", Matcher::default(), vec![]);
        assert_eq!(ok.validate(), Ok(()));
        let mut r = ok.clone();
        r.threshold = 0;
        assert!(r.validate().unwrap_err().contains("`threshold`"));
        let mut r = ok.clone();
        r.group_wait = r.window;
        assert!(r.validate().unwrap_err().contains("`group_wait`"));
        let mut r = ok.clone();
        r.window = Duration::ZERO;
        assert!(r.validate().unwrap_err().contains("`window`"));
        let mut r = ok;
        r.group_by.clear();
        assert!(r.validate().unwrap_err().contains("`group_by`"));
    }
}
