//! Pattern files (SPEC §3): the TOML shape users write, and its validation
//! into compiled patterns. Every problem is reported with `file:line:col`
//! and a fix, all of them in one pass; nothing here runs on the hot path.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::Spanned;

use super::level;
use super::{Context, Example, Expect, JsonRule, Matcher, MultilineSpec, Pattern, Role};
use crate::config::{Diagnostic, FileCtx, units};
use crate::event::Level;
use crate::multiline;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PatternToml {
    #[schemars(with = "String")]
    id: Spanned<String>,
    #[schemars(with = "Option<String>")]
    regex: Option<Spanned<String>>,
    #[schemars(with = "Option<JsonToml>")]
    json: Option<Spanned<JsonToml>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    require: Vec<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    level: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    service: Option<Spanned<String>>,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    sources: Option<Vec<String>>,
    #[schemars(with = "Option<PatternContext>")]
    context: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<MultilineToml>")]
    multiline: Option<Spanned<MultilineToml>>,
    #[schemars(with = "Option<Vec<String>>")]
    fingerprint: Option<Vec<Spanned<String>>>,
    /// `false`: templates of this pattern are its masked messages, never merged by the miner.
    #[serde(default = "mine_by_default")]
    mine_templates: bool,
    #[serde(default)]
    #[schemars(with = "Vec<ExampleToml>")]
    example: Vec<Spanned<ExampleToml>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JsonToml {
    #[serde(default)]
    level: Vec<String>,
    #[serde(default)]
    service: Vec<String>,
    #[serde(default)]
    ci_run_id: Vec<String>,
    #[serde(default)]
    message: Vec<String>,
    #[serde(default)]
    ts: Vec<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct MultilineToml {
    #[schemars(with = "Option<String>")]
    start: Option<Spanned<String>>,
    #[serde(rename = "continue")]
    #[schemars(with = "Option<String>")]
    continue_: Option<Spanned<String>>,
    max_lines: Option<usize>,
    #[schemars(with = "Option<String>")]
    max_bytes: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExampleToml {
    line: String,
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    expect: Option<Spanned<BTreeMap<String, toml::Value>>>,
    matches: Option<bool>,
}

const DOC: &str = "docs/patterns.md";

/// The schema of one `[[pattern]]`, for the pattern file's schema (`config::schema`).
pub(crate) fn pattern_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<PatternToml>()
}

/// `context = true | false | "end"`, as the schema tells it.
struct PatternContext;

impl JsonSchema for PatternContext {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PatternContext".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "true: a marker, its captures stick to the later events of the stream; \"end\": the end of a run, clears them",
            "anyOf": [{ "type": "boolean" }, { "const": "end" }]
        })
    }
}

/// The keys an event has besides `fields`: what `expect` and `fingerprint` may name.
const EVENT_KEYS: [&str; 6] = ["level", "service", "ci_run_id", "message", "pattern", "ts"];
const FINGERPRINT_KEYS: [&str; 7] = [
    "pattern",
    "service",
    "template",
    "level",
    "message",
    "ci_run_id",
    "source",
];

/// Parses one pattern file. `first_index` numbers its patterns in load order.
///
/// Each `[[pattern]]` is deserialized on its own, so that a mistake in one
/// (an unknown key, a wrong type) does not hide the mistakes in the others.
pub fn parse(
    path: &Path,
    text: &str,
    first_index: usize,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Pattern> {
    let ctx = FileCtx { path, text };
    let doc = match toml::de::DeTable::parse(text) {
        Ok(d) => d.into_inner(),
        Err(e) => {
            errors.push(ctx.toml_error(&e, DOC));
            return Vec::new();
        }
    };
    let mut defs = BTreeMap::new();
    let mut raw_patterns = Vec::new();
    for (key, value) in doc {
        match key.get_ref().as_ref() {
            "defs" => {
                match BTreeMap::<String, Spanned<String>>::deserialize(value.into_deserializer()) {
                    Ok(d) => defs = d,
                    Err(e) => errors.push(ctx.toml_error(&e, DOC)),
                }
            }
            "pattern" => raw_patterns.extend(ctx.each_table("pattern", value, DOC, errors)),
            other => {
                let keys = ["defs".to_string(), "pattern".to_string()];
                let fix = match crate::config::nearest(other, &keys) {
                    Some(k) => format!(
                        "did you mean `{k}`? a pattern file has [defs] and [[pattern]] tables"
                    ),
                    None => "a pattern file has [defs] and [[pattern]] tables".to_string(),
                };
                errors.push(ctx.diag(key.span(), format!("unknown key `{other}`"), fix));
            }
        }
    }
    let defs = Defs {
        raw: &defs,
        ctx: &ctx,
    };
    let mut out = Vec::new();
    for p in raw_patterns {
        let span = p.span();
        if let Some(p) = pattern(
            &ctx,
            &defs,
            p.into_inner(),
            span,
            first_index + out.len(),
            errors,
        ) {
            out.push(p);
        }
    }
    out
}

struct Defs<'a> {
    raw: &'a BTreeMap<String, Spanned<String>>,
    ctx: &'a FileCtx<'a>,
}

impl Defs<'_> {
    /// Replaces every `%{NAME}` (recursively) with the definition, as a non-capturing group.
    fn expand(&self, value: &Spanned<String>) -> Result<String, Diagnostic> {
        self.expand_in(value.get_ref(), value.span(), &mut Vec::new())
    }

    fn expand_in(
        &self,
        text: &str,
        span: std::ops::Range<usize>,
        stack: &mut Vec<String>,
    ) -> Result<String, Diagnostic> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find("%{") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                return Err(self
                    .ctx
                    .diag(span, "unterminated `%{` in regex", "close it: %{NAME}"));
            };
            let name = &after[..end];
            let Some(def) = self.raw.get(name) else {
                let known: Vec<String> = self.raw.keys().cloned().collect();
                let fix = match crate::config::nearest(name, &known) {
                    Some(n) => format!(
                        "did you mean `%{{{n}}}`? defs in this file: {}",
                        known.join(", ")
                    ),
                    None if known.is_empty() => "define it in this file's [defs] table".to_string(),
                    None => format!(
                        "define it in [defs]; defs in this file: {}",
                        known.join(", ")
                    ),
                };
                return Err(self
                    .ctx
                    .diag(span, format!("unknown def `%{{{name}}}`"), fix));
            };
            if stack.iter().any(|s| s == name) {
                return Err(self.ctx.diag(
                    def.span(),
                    format!(
                        "def `{name}` refers to itself through {}",
                        stack.join(" -> ")
                    ),
                    "break the cycle",
                ));
            }
            stack.push(name.to_string());
            let inner = self.expand_in(def.get_ref(), def.span(), stack)?;
            stack.pop();
            out.push_str("(?:");
            out.push_str(&inner);
            out.push(')');
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn pattern(
    ctx: &FileCtx<'_>,
    defs: &Defs<'_>,
    p: PatternToml,
    span: std::ops::Range<usize>,
    index: usize,
    errors: &mut Vec<Diagnostic>,
) -> Option<Pattern> {
    let before = errors.len();
    let id = p.id.get_ref().clone();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        errors.push(ctx.diag(
            p.id.span(),
            format!("pattern id `{id}` has characters other than letters, digits, `.`, `-`, `_`"),
            "use e.g. \"gitlab.job-failed\"",
        ));
    }
    let matcher = match (&p.regex, &p.json) {
        (Some(r), None) => regex_matcher(ctx, defs, r, errors),
        (None, Some(j)) => Some(json_matcher(&p.require, j.get_ref())),
        (Some(r), Some(_)) => {
            errors.push(ctx.diag(
                r.span(),
                format!("pattern `{id}` has both `regex` and `json`"),
                "keep one: split it into two patterns",
            ));
            None
        }
        (None, None) => {
            errors.push(ctx.diag(
                span.clone(),
                format!("pattern `{id}` has neither `regex` nor `json`"),
                "add regex = '...' or json = { message = [\"msg\"] }",
            ));
            None
        }
    };
    if let (Some(r), false) = (&p.regex, p.require.is_empty()) {
        errors.push(ctx.diag(
            r.span(),
            "`require` only applies to json patterns",
            "remove it, or match the text in the regex",
        ));
    }
    let fixed_level = p.level.as_ref().and_then(|l| match level::parse(l.get_ref()) {
        Some(level) => Some(level),
        None => {
            errors.push(ctx.diag(l.span(), format!("`{}` is not a level", l.get_ref()), "use trace, debug, info, notice, warn, error or critical (or leave it out to take the `level` capture)"));
            None
        }
    });
    let context = p
        .context
        .as_ref()
        .map_or(Context::Off, |c| context(ctx, &id, c, errors));
    let multiline = match (&p.multiline, &p.json) {
        (Some(m), Some(_)) => {
            errors.push(ctx.diag(
                m.span(),
                format!(
                    "pattern `{id}` is a json pattern: multiline joins text lines; a JSON record is already whole"
                ),
                "remove `multiline`",
            ));
            None
        }
        (Some(m), None) => multiline(ctx, defs, m, errors).map(Arc::new),
        (None, _) => None,
    };
    let captures: Vec<String> = match &matcher {
        Some(Matcher::Regex { roles, .. }) => roles
            .iter()
            .filter_map(|(_, r)| match r {
                Role::Field(name) => Some(name.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let is_json = matches!(matcher, Some(Matcher::Json(_)));
    let fingerprint = match &p.fingerprint {
        None => vec!["pattern".into(), "service".into(), "template".into()],
        Some(keys) => keys
            .iter()
            .filter_map(|k| {
                let name = k.get_ref();
                let known = FINGERPRINT_KEYS.contains(&name.as_str())
                    || name
                        .strip_prefix("fields.")
                        .is_some_and(|f| is_json || captures.iter().any(|c| c == f));
                if !known {
                    errors.push(ctx.diag(
                        k.span(),
                        format!("`{name}` cannot be a fingerprint key of pattern `{id}`"),
                        format!(
                            "use {} or fields.NAME for a capture of this pattern",
                            FINGERPRINT_KEYS.join(", ")
                        ),
                    ));
                }
                known.then(|| name.clone())
            })
            .collect(),
    };
    let mut examples = Vec::new();
    for ex in p.example {
        let ex_span = ex.span();
        let ex = ex.into_inner();
        let (line, _) = ctx.line_col(ex_span.start);
        let expect = match (ex.expect, ex.matches) {
            (Some(e), None | Some(true)) => {
                let mut want = BTreeMap::new();
                for (k, v) in e.get_ref() {
                    let producible = EVENT_KEYS.contains(&k.as_str())
                        || is_json
                        || captures.iter().any(|c| c == k)
                        || k.strip_prefix("labels.")
                            .is_some_and(|l| p.labels.contains_key(l));
                    if !producible {
                        errors.push(ctx.diag(
                            e.span(),
                            format!("example expects `{k}`, which pattern `{id}` cannot produce"),
                            format!(
                                "expect one of {}{}",
                                EVENT_KEYS.join(", "),
                                if captures.is_empty() {
                                    String::new()
                                } else {
                                    format!(", or a capture: {}", captures.join(", "))
                                }
                            ),
                        ));
                    }
                    if k == "level"
                        && v.as_str().is_some_and(
                            |s| !matches!(level::parse(s), Some(l) if level_name(l) == s),
                        )
                    {
                        errors.push(ctx.diag(
                            e.span(),
                            format!(
                                "example expects level `{}`, which is not a normalized level",
                                v.as_str().unwrap_or_default()
                            ),
                            "write trace, debug, info, notice, warn, error or critical",
                        ));
                    }
                    want.insert(k.clone(), toml_to_string(v));
                }
                Expect::Wins(want)
            }
            (None, Some(false)) => Expect::NoMatch,
            (Some(e), Some(false)) => {
                errors.push(ctx.diag(
                    e.span(),
                    "example has both `expect` and `matches = false`",
                    "keep one",
                ));
                Expect::NoMatch
            }
            (None, None | Some(true)) => Expect::Wins(BTreeMap::new()),
        };
        examples.push(Example {
            line: ex.line,
            file_line: line,
            expect,
        });
    }
    if errors.len() > before {
        return None;
    }
    let (line, _) = ctx.line_col(span.start);
    Some(Pattern {
        id: Arc::from(id.as_str()),
        file: Arc::from(ctx.path),
        line,
        index,
        matcher: matcher?,
        level: fixed_level,
        service: p.service.map(|s| s.into_inner()),
        priority: p.priority,
        labels: p.labels,
        sources: p.sources,
        context,
        multiline,
        fingerprint,
        mine_templates: p.mine_templates,
        examples,
    })
}

/// `context = true | false | "end"`.
fn context(
    ctx: &FileCtx<'_>,
    id: &str,
    raw: &Spanned<toml::Value>,
    errors: &mut Vec<Diagnostic>,
) -> Context {
    match raw.get_ref() {
        toml::Value::Boolean(true) => Context::Marker,
        toml::Value::Boolean(false) => Context::Off,
        toml::Value::String(s) if s == "end" => Context::End,
        other => {
            errors.push(ctx.diag(
                raw.span(),
                format!("`context = {other}` of pattern `{id}` is not true, false or \"end\""),
                "write context = true (a marker: its captures stick to the later events of the stream), context = \"end\" (the end of a run: clears them) or leave it out",
            ));
            Context::Off
        }
    }
}

fn regex_matcher(
    ctx: &FileCtx<'_>,
    defs: &Defs<'_>,
    r: &Spanned<String>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Matcher> {
    let text = match defs.expand(r) {
        Ok(t) => t,
        Err(d) => {
            errors.push(d);
            return None;
        }
    };
    let regex = match regex::Regex::new(&text) {
        Ok(re) => re,
        Err(e) => {
            let fix = if text != *r.get_ref() {
                format!("the regex after %{{DEF}} expansion was: {text}")
            } else {
                "see https://docs.rs/regex/#syntax".to_string()
            };
            errors.push(ctx.diag(r.span(), format!("invalid regex:\n{e}\n"), fix));
            return None;
        }
    };
    let mut roles = Vec::new();
    for (i, name) in regex.capture_names().enumerate() {
        let Some(name) = name else { continue };
        if !name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            errors.push(ctx.diag(
                r.span(),
                format!("capture name `{name}` is not a lowercase identifier"),
                "use [a-z_][a-z0-9_]*, e.g. (?P<exit_code>\\d+)",
            ));
            continue;
        }
        let role = match name {
            "level" => Role::Level,
            "service" => Role::Service,
            "ci_run_id" => Role::CiRunId,
            "message" => Role::Message,
            "ts" => Role::Ts,
            other => Role::Field(Arc::from(other)),
        };
        roles.push((i, role));
    }
    Some(Matcher::Regex {
        regex,
        source: text,
        roles,
    })
}

fn mine_by_default() -> bool {
    true
}

fn json_matcher(require: &[Spanned<String>], j: &JsonToml) -> Matcher {
    Matcher::Json(JsonRule {
        level: j.level.clone(),
        service: j.service.clone(),
        ci_run_id: j.ci_run_id.clone(),
        message: j.message.clone(),
        ts: j.ts.clone(),
        require: require.iter().map(|r| r.get_ref().clone()).collect(),
    })
}

fn multiline(
    ctx: &FileCtx<'_>,
    defs: &Defs<'_>,
    m: &Spanned<MultilineToml>,
    errors: &mut Vec<Diagnostic>,
) -> Option<MultilineSpec> {
    let raw = m.get_ref();
    let compile = |r: &Spanned<String>, errors: &mut Vec<Diagnostic>| -> Option<regex::Regex> {
        let text = defs.expand(r).map_err(|d| errors.push(d)).ok()?;
        regex::Regex::new(&text)
            .map_err(|e| {
                errors.push(ctx.diag(
                    r.span(),
                    format!("invalid multiline regex:\n{e}\n"),
                    "fix the regex",
                ))
            })
            .ok()
    };
    let (start, cont) = match (&raw.start, &raw.continue_) {
        (Some(s), None) => (Some(compile(s, errors)?), None),
        (None, Some(c)) => (None, Some(compile(c, errors)?)),
        _ => {
            errors.push(ctx.diag(m.span(), "multiline needs exactly one of `start` and `continue`", "start = '^\\S' (a line that begins a record) or continue = '^\\s' (a line that continues one)"));
            return None;
        }
    };
    let max_bytes = match &raw.max_bytes {
        Some(b) => units::byte_size(b.get_ref())
            .map_err(|fix| errors.push(ctx.diag(b.span(), "invalid max_bytes", fix)))
            .ok()?,
        None => multiline::MAX_BYTES,
    };
    let timeout = match &raw.timeout {
        Some(t) => units::duration(t.get_ref())
            .map_err(|fix| errors.push(ctx.diag(t.span(), "invalid timeout", fix)))
            .ok()?,
        None => multiline::TIMEOUT,
    };
    Some(MultilineSpec {
        start,
        cont,
        max_lines: raw.max_lines.unwrap_or(multiline::MAX_LINES),
        max_bytes,
        timeout,
    })
}

pub fn level_name(l: Level) -> &'static str {
    match l {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Notice => "notice",
        Level::Warn => "warn",
        Level::Error => "error",
        Level::Critical => "critical",
    }
}

fn toml_to_string(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Vec<Pattern>, Vec<Diagnostic>) {
        let mut errors = Vec::new();
        let patterns = parse(Path::new("p.toml"), text, 0, &mut errors);
        (patterns, errors)
    }

    #[test]
    fn context_is_off_marker_or_end() {
        let (patterns, errors) = load(concat!(
            "[[pattern]]\nid = \"a\"\nregex = 'a'\n",
            "[[pattern]]\nid = \"b\"\nregex = 'b'\ncontext = false\n",
            "[[pattern]]\nid = \"c\"\nregex = 'c'\ncontext = true\n",
            "[[pattern]]\nid = \"d\"\nregex = 'd'\ncontext = \"end\"\n",
        ));
        assert!(errors.is_empty(), "{errors:?}");
        let contexts: Vec<Context> = patterns.iter().map(|p| p.context).collect();
        assert_eq!(
            contexts,
            [Context::Off, Context::Off, Context::Marker, Context::End]
        );
    }

    #[test]
    fn other_context_values_are_reported_where_written() {
        let (patterns, errors) = load(concat!(
            "[[pattern]]\nid = \"a\"\nregex = 'a'\ncontext = \"start\"\n",
            "[[pattern]]\nid = \"b\"\nregex = 'b'\ncontext = 1\n",
        ));
        assert!(patterns.is_empty());
        let shown: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].starts_with(
                "p.toml:4:11: `context = \"start\"` of pattern `a` is not true, false or \"end\" — write context = true"
            ),
            "{}",
            shown[0]
        );
        assert!(
            shown[1].starts_with("p.toml:8:11: `context = 1`"),
            "{}",
            shown[1]
        );
    }

    #[test]
    fn multiline_on_a_json_pattern_is_an_error() {
        let (patterns, errors) = load(
            "[[pattern]]\nid = \"j\"\njson = { message = [\"msg\"] }\nmultiline = { start = '^\\S' }\n",
        );
        assert!(patterns.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].to_string(),
            "p.toml:4:13: pattern `j` is a json pattern: multiline joins text lines; a JSON record is already whole — remove `multiline`"
        );
    }

    #[test]
    fn multiline_rule_is_shared() {
        let (patterns, errors) = load(
            "[[pattern]]\nid = \"t\"\nregex = '^Traceback'\nmultiline = { continue = '^\\s', max_lines = 50 }\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let rule = patterns[0].multiline.clone().expect("a multiline rule");
        assert_eq!(Arc::strong_count(&rule), 2);
        assert_eq!(
            (rule.max_lines, rule.max_bytes, rule.timeout),
            (50, multiline::MAX_BYTES, multiline::TIMEOUT)
        );
        assert!(rule.start.is_none() && rule.cont.is_some());
    }

    #[test]
    fn sticky_fields_are_the_captures_that_land_in_fields() {
        let (patterns, errors) = load(concat!(
            "[[pattern]]\nid = \"m\"\ncontext = true\n",
            "regex = '^(?P<level>\\w+) started by (?P<trigger>\\w+) run=(?P<ci_run_id>\\d+) on (?P<node>\\S+): (?P<message>.*)'\n",
            "[[pattern]]\nid = \"j\"\njson = { message = [\"msg\"] }\n",
        ));
        assert!(errors.is_empty(), "{errors:?}");
        let fields: Vec<&str> = patterns[0].sticky_fields().collect();
        assert_eq!(fields, ["trigger", "node"]);
        assert_eq!(patterns[1].sticky_fields().count(), 0);
    }
}
