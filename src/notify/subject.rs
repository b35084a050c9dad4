//! The subject template of a `nats` receiver: `logward.{level}.{service}` and the like.
//!
//! Owns: parsing the template (once, in config), filling it from an escalation, the stream
//! subject filter it implies, and NATS subject matching. Must not: connect or publish (that is
//! [`super::nats`]).
//!
//! Every placeholder is a whole token (between dots) and its value comes from log content, so
//! each value is made one safe token: characters outside `[A-Za-z0-9_-]` (`.`, `*`, `>`,
//! whitespace, anything non-ASCII) become `_`, an empty or missing value is `none`, and a value
//! is cut at [`VALUE_MAX_CHARS`]. A hostile service name can therefore never add a token, turn
//! into a wildcard or leave the stream's subjects; the filter (each placeholder token -> `*`)
//! covers every subject the template can make.

use crate::escalation::Escalation;
use crate::pattern::level_name;

/// The placeholders a template may use, in the order the docs list them.
pub const PLACEHOLDERS: [&str; 8] = [
    "level",
    "service",
    "route",
    "receiver",
    "kind",
    "pattern",
    "ci_run_id",
    "host",
];

/// What an empty or missing value becomes.
pub const MISSING: &str = "none";

/// A value longer than this (in characters) is cut: a subject names a stream of messages,
/// it is not a place for text.
pub const VALUE_MAX_CHARS: usize = 64;

/// An escalation field a placeholder names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Level,
    Service,
    Route,
    Receiver,
    Kind,
    Pattern,
    CiRunId,
    Host,
}

impl Field {
    fn named(name: &str) -> Option<Field> {
        Some(match name {
            "level" => Field::Level,
            "service" => Field::Service,
            "route" => Field::Route,
            "receiver" => Field::Receiver,
            "kind" => Field::Kind,
            "pattern" => Field::Pattern,
            "ci_run_id" => Field::CiRunId,
            "host" => Field::Host,
            _ => return None,
        })
    }

    fn value(self, esc: &Escalation) -> Option<&str> {
        match self {
            Field::Level => esc.level.map(level_name),
            Field::Service => esc.service.as_deref(),
            Field::Route => Some(&esc.route),
            Field::Receiver => Some(&esc.receiver),
            Field::Kind => Some(esc.kind.as_str()),
            Field::Pattern => esc.pattern.as_deref(),
            Field::CiRunId => esc.ci_run_id.as_deref(),
            Field::Host => Some(&esc.host),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    Field(Field),
}

/// A validated subject template: dot-separated tokens, each a literal or one placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate {
    tokens: Vec<Token>,
}

/// What is wrong with a template; [`TemplateError::fix`] says how to mend it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`subject` is empty")]
    Empty,
    #[error("`subject` has an empty token (two dots in a row, or a dot at an end)")]
    EmptyToken,
    #[error("`subject` has an unknown placeholder `{{{name}}}`")]
    Unknown {
        name: String,
        nearest: Option<String>,
    },
    #[error("`subject`: `{token}` mixes a placeholder with other text")]
    NotWholeToken { token: String },
    #[error("`subject`: `{token}` is not a subject token")]
    BadLiteral { token: String },
}

impl TemplateError {
    pub fn fix(&self) -> String {
        let known = PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ");
        match self {
            TemplateError::Empty | TemplateError::EmptyToken => {
                "write dot-separated tokens, e.g. subject = \"logward.{level}.{service}\"".into()
            }
            TemplateError::Unknown {
                nearest: Some(n), ..
            } => format!("did you mean `{{{n}}}`? placeholders: {known}"),
            TemplateError::Unknown { nearest: None, .. } => format!("placeholders: {known}"),
            TemplateError::NotWholeToken { .. } => {
                "a placeholder is a whole token between dots, e.g. \"logward.{service}\", not \"logward.svc-{service}\"".into()
            }
            TemplateError::BadLiteral { .. } => {
                "use letters, digits, `_` and `-` between the dots (no wildcards, no spaces)".into()
            }
        }
    }
}

impl SubjectTemplate {
    pub fn parse(text: &str) -> Result<SubjectTemplate, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        let tokens = text
            .split('.')
            .map(|t| {
                if t.is_empty() {
                    return Err(TemplateError::EmptyToken);
                }
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    if name.contains(['{', '}']) {
                        return Err(TemplateError::NotWholeToken { token: t.into() });
                    }
                    return Field::named(name).map(Token::Field).ok_or_else(|| {
                        TemplateError::Unknown {
                            name: name.into(),
                            nearest: crate::config::nearest(name, &PLACEHOLDERS.map(String::from))
                                .map(str::to_string),
                        }
                    });
                }
                if t.contains(['{', '}']) {
                    return Err(TemplateError::NotWholeToken { token: t.into() });
                }
                if !t.chars().all(is_token_char) {
                    return Err(TemplateError::BadLiteral { token: t.into() });
                }
                Ok(Token::Literal(t.into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SubjectTemplate { tokens })
    }

    /// The subject of `esc`: each placeholder filled with its value made one safe token.
    pub fn render(&self, esc: &Escalation) -> String {
        let mut out = String::new();
        for (i, t) in self.tokens.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            match t {
                Token::Literal(l) => out.push_str(l),
                Token::Field(f) => push_safe(&mut out, f.value(esc).unwrap_or("")),
            }
        }
        out
    }

    /// The stream subject filter that covers every subject this template makes: each
    /// placeholder token becomes `*`.
    pub fn filter(&self) -> String {
        let tokens: Vec<&str> = self
            .tokens
            .iter()
            .map(|t| match t {
                Token::Literal(l) => l.as_str(),
                Token::Field(_) => "*",
            })
            .collect();
        tokens.join(".")
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Appends `value` as one safe token (see the module doc).
fn push_safe(out: &mut String, value: &str) {
    if value.is_empty() {
        out.push_str(MISSING);
        return;
    }
    out.extend(
        value
            .chars()
            .take(VALUE_MAX_CHARS)
            .map(|c| if is_token_char(c) { c } else { '_' }),
    );
}

/// Whether the subject filter `filter` (with `*` for one token, a last `>` for one or more)
/// matches the subject `subject`, as NATS matches them.
pub fn matches(filter: &str, subject: &str) -> bool {
    let mut subject = subject.split('.');
    for f in filter.split('.') {
        match (f, subject.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (f, Some(s)) if f == s => {}
            _ => return false,
        }
    }
    subject.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;
    use crate::notify::tests::escalation;

    fn template(text: &str) -> SubjectTemplate {
        SubjectTemplate::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_placeholder_is_filled_from_the_escalation() {
        let mut esc = escalation("ERROR db timeout");
        esc.level = Some(Level::Error);
        esc.service = Some("api".into());
        esc.pattern = Some("java.exception".into());
        esc.ci_run_id = Some("4711".into());
        esc.host = "build-01".into();
        let t = template(
            "logward.{level}.{service}.{route}.{receiver}.{kind}.{pattern}.{ci_run_id}.{host}",
        );
        assert_eq!(
            t.render(&esc),
            format!(
                "logward.error.api.{}.{}.first.java_exception.4711.build-01",
                esc.route, esc.receiver
            )
        );
        assert_eq!(t.filter(), "logward.*.*.*.*.*.*.*.*");
    }

    #[test]
    fn hostile_values_stay_one_token() {
        let mut esc = escalation("ERROR x");
        esc.ci_run_id = None;
        let t = template("logward.{service}.{ci_run_id}.end");
        for (service, token) in [
            ("a.b", "a_b"),
            ("*", "_"),
            (">", "_"),
            ("api.>", "api__"),
            ("x y\tz\n", "x_y_z_"),
            ("", MISSING),
            ("naïve", "na_ve"),
            (
                "$JS.API.STREAM.DELETE.LOGWARD",
                "_JS_API_STREAM_DELETE_LOGWARD",
            ),
        ] {
            esc.service = Some(service.into());
            let subject = t.render(&esc);
            assert_eq!(subject, format!("logward.{token}.none.end"), "{service:?}");
            assert!(matches(&t.filter(), &subject), "{subject}");
        }
        esc.service = Some("s".repeat(1000));
        let long = t.render(&esc);
        assert_eq!(long.len(), "logward..none.end".len() + VALUE_MAX_CHARS);
    }

    #[test]
    fn bad_templates_say_what_and_how_to_fix() {
        let err = |t: &str| SubjectTemplate::parse(t).unwrap_err();
        assert_eq!(err(""), TemplateError::Empty);
        assert_eq!(err("logward..x"), TemplateError::EmptyToken);
        assert_eq!(err("logward."), TemplateError::EmptyToken);
        let unknown = err("logward.{servce}");
        assert_eq!(
            unknown.to_string(),
            "`subject` has an unknown placeholder `{servce}`"
        );
        assert!(
            unknown.fix().starts_with("did you mean `{service}`?"),
            "{}",
            unknown.fix()
        );
        assert!(matches!(
            err("logward.{bogus}"),
            TemplateError::Unknown { nearest: None, .. }
        ));
        assert!(matches!(
            err("logs-{service}"),
            TemplateError::NotWholeToken { .. }
        ));
        assert!(matches!(
            err("{level}{service}"),
            TemplateError::NotWholeToken { .. }
        ));
        assert!(matches!(err("logward.*"), TemplateError::BadLiteral { .. }));
        assert!(matches!(err("logward.>"), TemplateError::BadLiteral { .. }));
        assert!(matches!(err("log ward"), TemplateError::BadLiteral { .. }));
        let t = template("logward.escalations");
        assert_eq!(t.filter(), "logward.escalations");
    }

    #[test]
    fn subject_matching_follows_nats_wildcards() {
        assert!(matches("logward.*.*", "logward.error.api"));
        assert!(!matches("logward.*.*", "logward.error"));
        assert!(!matches("logward.*.*", "logward.error.api.x"));
        assert!(matches("logward.>", "logward.error.api"));
        assert!(!matches("logward.>", "logward"));
        assert!(matches(">", "a"));
        assert!(!matches("logward.error.*", "logward.warn.api"));
        assert!(matches("a.b", "a.b"));
    }
}
