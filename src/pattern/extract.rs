//! Applying a pattern set to an event, explaining the decision, and running
//! pattern examples. One `Scratch` per thread keeps matching allocation-free
//! for the common case.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Expect, JsonRule, Matcher, Pattern, PatternSet, Role, level, level_name};
use crate::event::{Event, Origin, Record, Timestamp};

/// Reusable matching buffers, one per thread.
#[derive(Debug, Default)]
pub struct Scratch {
    set_matches: Vec<bool>,
    locations: Vec<Option<regex::CaptureLocations>>,
    /// Source labels merged with a pattern's, by (source labels, pattern): the
    /// lines of a stream mostly share both, so the merge is done once.
    merged_labels: Vec<(Labels, usize, Labels)>,
}

type Labels = Arc<BTreeMap<String, String>>;

/// Merged label sets kept per thread; past this the oldest is dropped.
const MERGED_LABELS_KEPT: usize = 16;

impl Scratch {
    fn labels(
        &mut self,
        source: &Arc<BTreeMap<String, String>>,
        p: &Pattern,
    ) -> Arc<BTreeMap<String, String>> {
        if let Some((_, _, merged)) = self
            .merged_labels
            .iter()
            .find(|(s, i, _)| *i == p.index && Arc::ptr_eq(s, source))
        {
            return merged.clone();
        }
        let mut labels = (**source).clone();
        labels.extend(p.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        let merged = Arc::new(labels);
        if self.merged_labels.len() == MERGED_LABELS_KEPT {
            self.merged_labels.remove(0);
        }
        self.merged_labels
            .push((source.clone(), p.index, merged.clone()));
        merged
    }
}

/// Why a pattern did or did not take a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Won,
    /// Matched, but a pattern earlier in evaluation order won.
    Outranked,
    NotForSource,
    NotJson,
    MissingKey(String),
    NoMatch,
}

#[derive(Debug)]
pub struct Candidate {
    pub id: Arc<str>,
    pub location: String,
    pub priority: i64,
    pub verdict: Verdict,
}

#[derive(Debug)]
pub struct Explanation {
    pub json: bool,
    pub candidates: Vec<Candidate>,
    pub event: Event,
}

impl PatternSet {
    /// Extracts what the set knows from the event. Returns the winning
    /// pattern (the JSON pattern, or the regex pattern that matched the line
    /// or the JSON message), if any.
    pub fn apply(&self, ev: &mut Event, scratch: &mut Scratch) -> Option<&Pattern> {
        if ev.json.is_none() {
            ev.json = parse_json_object(&ev.line);
        }
        let json_winner = match ev.json.take() {
            Some(obj) => {
                let winner = self
                    .json_patterns
                    .iter()
                    .map(|&i| &self.patterns[i])
                    .find(|p| {
                        p.applies_to(&ev.source) && json_rule(p).is_some_and(|r| r.accepts(&obj))
                    });
                if let Some(p) = winner {
                    fill_from_json(p, json_rule(p).unwrap_or(&JsonRule::default()), &obj, ev);
                }
                ev.json = Some(obj);
                winner
            }
            None => None,
        };
        let from_json = json_winner.is_some();
        let regex_winner = {
            let text = match (from_json, &ev.message) {
                (true, Some(m)) => m.as_str(),
                (true, None) => "",
                (false, _) => ev.line.as_str(),
            };
            self.regex_winner(text, &ev.source, scratch)
        };
        let regex_pattern = regex_winner.as_ref().map(|(_, p, _)| *p);
        if let Some((k, p, locs)) = regex_winner {
            // Captures borrow the text they came from; move it out while the event is filled.
            let text = if from_json {
                ev.message.take().unwrap_or_default()
            } else {
                std::mem::take(&mut ev.line)
            };
            fill_from_captures(p, &locs, &text, ev, from_json);
            if from_json {
                ev.message.get_or_insert(text);
            } else {
                ev.line = text;
            }
            scratch.locations[k] = Some(locs);
        }
        let winner = regex_pattern.or(json_winner);
        match winner {
            Some(p) => {
                ev.matched = true;
                ev.pattern = Some(p.id.clone());
                if !p.labels.is_empty() {
                    ev.labels = scratch.labels(&ev.labels, p);
                }
            }
            None => ev.matched = false,
        }
        if ev.ci_run_id.is_none() {
            ev.ci_run_id = super::runid::find(&ev.line).map(str::to_string);
        }
        if ev.message.is_none() {
            ev.message = Some(ev.line.clone());
        }
        winner
    }

    /// The first regex pattern, in evaluation order, that matches `text`, with its captures.
    fn regex_winner(
        &self,
        text: &str,
        source: &str,
        scratch: &mut Scratch,
    ) -> Option<(usize, &Pattern, regex::CaptureLocations)> {
        if self.regex_patterns.is_empty() {
            return None;
        }
        scratch.set_matches.clear();
        scratch.set_matches.resize(self.regex_patterns.len(), false);
        if scratch.locations.len() != self.regex_patterns.len() {
            scratch.locations = (0..self.regex_patterns.len()).map(|_| None).collect();
        }
        if !self.set.matches_read_at(&mut scratch.set_matches, text, 0) {
            return None;
        }
        for (k, _) in scratch.set_matches.iter().enumerate().filter(|(_, m)| **m) {
            let p = &self.patterns[self.regex_patterns[k]];
            if !p.applies_to(source) {
                continue;
            }
            let Matcher::Regex { regex, .. } = &p.matcher else {
                continue;
            };
            let mut locs = scratch.locations[k]
                .take()
                .unwrap_or_else(|| regex.capture_locations());
            if regex.captures_read(&mut locs, text).is_some() {
                return Some((k, p, locs));
            }
            scratch.locations[k] = Some(locs);
        }
        None
    }

    /// Every pattern's verdict on one record, and the event it becomes.
    pub fn explain(&self, mut ev: Event) -> Explanation {
        let mut scratch = Scratch::default();
        let obj = ev.json.clone().or_else(|| parse_json_object(&ev.line));
        let had_json = obj.is_some();
        let winner = self.apply(&mut ev, &mut scratch).map(|p| p.id.clone());
        let json_message = if had_json { ev.message.clone() } else { None };
        let candidates = self
            .patterns
            .iter()
            .map(|p| {
                let verdict = if winner.as_ref() == Some(&p.id) {
                    Verdict::Won
                } else if !p.applies_to(&ev.source) {
                    Verdict::NotForSource
                } else {
                    match &p.matcher {
                        Matcher::Json(rule) => match &obj {
                            None => Verdict::NotJson,
                            Some(o) => match rule.missing(o) {
                                Some(k) => Verdict::MissingKey(k),
                                None => Verdict::Outranked,
                            },
                        },
                        Matcher::Regex { regex, .. } => {
                            let text = json_message.as_deref().unwrap_or(&ev.line);
                            if regex.is_match(text) {
                                Verdict::Outranked
                            } else {
                                Verdict::NoMatch
                            }
                        }
                    }
                };
                Candidate {
                    id: p.id.clone(),
                    location: p.location(),
                    priority: p.priority,
                    verdict,
                }
            })
            .collect();
        Explanation {
            json: had_json,
            candidates,
            event: ev,
        }
    }

    /// Runs every example; each result is (pattern, example line in its file, problems).
    pub fn run_examples(&self) -> Vec<ExampleOutcome<'_>> {
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        for p in &self.patterns {
            for ex in &p.examples {
                let problems = match &ex.expect {
                    Expect::NoMatch => match self.matches_alone(p, &ex.line) {
                        true => vec!["expected no match, but the pattern matches".to_string()],
                        false => Vec::new(),
                    },
                    Expect::Wins(want) => {
                        let source = p
                            .sources
                            .as_ref()
                            .and_then(|s| s.first())
                            .map_or("example", String::as_str);
                        let mut ev = example_event(&ex.line, source);
                        let winner = self.apply(&mut ev, &mut scratch).map(|w| w.id.clone());
                        let mut problems = Vec::new();
                        if winner.as_deref() != Some(&*p.id) {
                            problems.push(format!(
                                "expected pattern `{}` to win, got {}",
                                p.id,
                                winner.map_or("no match".to_string(), |w| format!("`{w}`"))
                            ));
                        } else {
                            for (key, value) in want {
                                let got = event_value(&ev, key);
                                if got.as_deref() != Some(value.as_str()) {
                                    problems.push(format!(
                                        "{key}: expected {value:?}, got {}",
                                        got.map_or("null".to_string(), |g| format!("{g:?}"))
                                    ));
                                }
                            }
                        }
                        problems
                    }
                };
                out.push(ExampleOutcome {
                    pattern: p,
                    file_line: ex.file_line,
                    line: &ex.line,
                    problems,
                });
            }
        }
        out
    }

    /// Whether the pattern alone matches the line (as a JSON object or as text).
    fn matches_alone(&self, p: &Pattern, line: &str) -> bool {
        match &p.matcher {
            Matcher::Json(rule) => parse_json_object(line).is_some_and(|o| rule.accepts(&o)),
            Matcher::Regex { regex, .. } => regex.is_match(line),
        }
    }
}

/// The result of one pattern example.
#[derive(Debug)]
pub struct ExampleOutcome<'a> {
    pub pattern: &'a Pattern,
    pub file_line: usize,
    pub line: &'a str,
    pub problems: Vec<String>,
}

fn json_rule(p: &Pattern) -> Option<&JsonRule> {
    match &p.matcher {
        Matcher::Json(r) => Some(r),
        Matcher::Regex { .. } => None,
    }
}

impl JsonRule {
    /// Whether the rule takes the object: `missing` without building its answer (hot path).
    fn accepts(&self, obj: &Map<String, Value>) -> bool {
        self.require.iter().all(|k| lookup(obj, k).is_some())
            && (self.message.is_empty() || first(obj, &self.message).is_some())
    }

    /// The first required key that is absent (a message alias counts as required).
    fn missing(&self, obj: &Map<String, Value>) -> Option<String> {
        if let Some(k) = self.require.iter().find(|k| lookup(obj, k).is_none()) {
            return Some(k.clone());
        }
        if !self.message.is_empty() && first(obj, &self.message).is_none() {
            return Some(self.message.join(" | "));
        }
        None
    }
}

/// A key by name, or by a dotted path into nested objects.
fn lookup<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(v) = obj.get(key) {
        return Some(v);
    }
    if !key.as_bytes().contains(&b'.') {
        return None;
    }
    let mut parts = key.split('.');
    let mut cur = obj.get(parts.next()?)?;
    for part in parts {
        cur = cur.as_object()?.get(part)?;
    }
    Some(cur)
}

/// The first alias present and not null, with the alias that found it.
fn first<'a, 'k>(
    obj: &'a Map<String, Value>,
    aliases: &'k [String],
) -> Option<(&'a Value, &'k str)> {
    aliases.iter().find_map(|k| {
        lookup(obj, k)
            .filter(|v| !v.is_null())
            .map(|v| (v, k.as_str()))
    })
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_json_object(line: &str) -> Option<Map<String, Value>> {
    let t = line.trim();
    if !(t.starts_with('{') && t.ends_with('}')) {
        return None;
    }
    serde_json::from_str(t).ok()
}

fn fill_from_json<'a>(p: &Pattern, rule: &'a JsonRule, obj: &Map<String, Value>, ev: &mut Event) {
    // The top-level keys the aliases resolved through; every other key lands in `fields`.
    let mut used: [Option<&str>; 5] = [None; 5];
    let mut take = |slot: usize, aliases: &'a [String]| {
        let (v, key) = first(obj, aliases)?;
        used[slot] = top_key(obj, key);
        Some(v)
    };
    let raw_level = take(0, &rule.level);
    let raw_service = take(1, &rule.service);
    let raw_run = take(2, &rule.ci_run_id);
    let raw_message = take(3, &rule.message);
    let raw_ts = take(4, &rule.ts);
    ev.level = p.level.or_else(|| {
        let raw = raw_level?;
        let l = level::from_json(raw);
        if l.is_none() {
            ev.fields.insert("level_raw".into(), raw.clone());
        }
        l
    });
    ev.service = p
        .service
        .clone()
        .or_else(|| raw_service.and_then(scalar_string));
    ev.ci_run_id = raw_run.and_then(scalar_string);
    ev.message = raw_message.map(|v| scalar_string(v).unwrap_or_else(|| v.to_string()));
    if let Some(ts) = raw_ts.and_then(parse_ts_json) {
        ev.ts = ts;
    }
    for (k, v) in obj {
        if !used.contains(&Some(k.as_str())) && !ev.fields.contains_key(k) {
            ev.fields.insert(k.clone(), v.clone());
        }
    }
}

/// The top-level key an alias resolved through, when the whole key was used:
/// `a` for `a`, and `a` for `a.b` only when `a` holds nothing but `b`.
fn top_key<'k>(obj: &Map<String, Value>, key: &'k str) -> Option<&'k str> {
    if obj.contains_key(key) {
        return Some(key);
    }
    let top = key.split('.').next()?;
    obj.get(top)
        .and_then(Value::as_object)
        .is_some_and(|o| o.len() == 1)
        .then_some(top)
}

fn fill_from_captures(
    p: &Pattern,
    locs: &regex::CaptureLocations,
    text: &str,
    ev: &mut Event,
    only_missing: bool,
) {
    let Matcher::Regex { roles, .. } = &p.matcher else {
        return;
    };
    let get = |i: usize| locs.get(i).map(|(s, e)| &text[s..e]);
    if !only_missing || ev.level.is_none() {
        if let Some(l) = p.level {
            ev.level = Some(l);
        }
    }
    if !only_missing || ev.service.is_none() {
        if let Some(s) = &p.service {
            ev.service = Some(s.clone());
        }
    }
    for (i, role) in roles {
        let Some(value) = get(*i) else { continue };
        match role {
            Role::Level if p.level.is_none() && (!only_missing || ev.level.is_none()) => {
                match level::parse(value) {
                    Some(l) => ev.level = Some(l),
                    None if !value.is_empty() => {
                        ev.fields
                            .insert("level_raw".into(), Value::String(value.to_string()));
                    }
                    None => {}
                }
            }
            Role::Service
                if p.service.is_none()
                    && !value.is_empty()
                    && (!only_missing || ev.service.is_none()) =>
            {
                ev.service = Some(value.to_string())
            }
            Role::CiRunId if !value.is_empty() && (!only_missing || ev.ci_run_id.is_none()) => {
                ev.ci_run_id = Some(value.to_string())
            }
            Role::Message if !only_missing => ev.message = Some(value.to_string()),
            Role::Ts if !only_missing => {
                if let Some(ts) = parse_ts_text(value) {
                    ev.ts = ts;
                }
            }
            Role::Field(name) if !ev.fields.contains_key(&**name) => {
                ev.fields
                    .insert(name.to_string(), Value::String(value.to_string()));
            }
            _ => {}
        }
    }
}

/// Timestamps as logs write them: RFC 3339, `2024-01-01 12:00:00,123` (UTC
/// assumed when there is no offset).
fn parse_ts_text(text: &str) -> Option<Timestamp> {
    if let Some(t) = Timestamp::parse_rfc3339(text) {
        return Some(t);
    }
    let normalized = text.replacen(' ', "T", 1).replace(',', ".");
    if let Some(t) = Timestamp::parse_rfc3339(&normalized) {
        return Some(t);
    }
    let naive = chrono::NaiveDateTime::parse_from_str(&normalized, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    naive
        .and_utc()
        .timestamp_nanos_opt()
        .map(Timestamp::from_nanos)
}

/// JSON timestamps: strings as above, or epoch seconds / milliseconds.
fn parse_ts_json(v: &Value) -> Option<Timestamp> {
    match v {
        Value::String(s) => parse_ts_text(s),
        Value::Number(n) => {
            let f = n.as_f64()?;
            let nanos = if f > 1e17 {
                f
            } else if f > 1e14 {
                f * 1e3
            } else if f > 1e11 {
                f * 1e6
            } else {
                f * 1e9
            };
            (nanos.is_finite() && nanos > 0.0 && nanos < 9.2e18)
                .then(|| Timestamp::from_nanos(nanos as i64))
        }
        _ => None,
    }
}

fn example_event(line: &str, source: &str) -> Event {
    let origin = Origin::new(Arc::from(source), None, Arc::default());
    Event::from_record(
        Record::text(0, line.to_string()),
        &origin,
        Timestamp::from_nanos(0),
    )
}

/// An event's value for a key of `expect`, as a string.
fn event_value(ev: &Event, key: &str) -> Option<String> {
    match key {
        "level" => ev.level.map(|l| level_name(l).to_string()),
        "service" => ev.service.clone(),
        "ci_run_id" => ev.ci_run_id.clone(),
        "message" => ev.message.clone(),
        "pattern" => ev.pattern.as_deref().map(str::to_string),
        "ts" => Some(ev.ts.to_string()),
        other => match other.strip_prefix("labels.") {
            Some(l) => ev.labels.get(l).cloned(),
            None => ev
                .fields
                .get(other.strip_prefix("fields.").unwrap_or(other))
                .map(|v| scalar_string(v).unwrap_or_else(|| v.to_string())),
        },
    }
}
