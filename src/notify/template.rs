//! Message templates (`template` / `template_file` on a `slack`, `feishu`, `dingtalk`,
//! `wecom` or `email` receiver): a minijinja template whose output replaces the body of a chat
//! message, or the text of a mail.
//!
//! Owns: compiling a template once, at config load, with strict undefined behaviour; checking
//! it (syntax, unknown variables, one render of [`sample_escalation`]); the context it sees
//! (the escalation's [`KEYS`] and `explore_url`); and the formatter that escapes every value a
//! template prints for the receiver's [`Markup`].
//!
//! Must not: build a provider's payload or its envelope (headline, colour, mentions: each
//! sender does), or let a value reach the output unescaped. The formatter escapes whatever the
//! template says: `|safe`, `{% autoescape false %}` and captured blocks do not turn it off, so a
//! log line can never add a mention, a link or markup. Only the template's own text is sent as
//! written; it comes from the config.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{Object, ObjectRepr, Value};
use minijinja::{Environment, Output, State, UndefinedBehavior};

use super::render;
use crate::escalation::{Escalation, KEYS, sample_escalation};
use crate::event::KEYS as EVENT_KEYS;

/// The variable that holds the receiver's explore link; the others are the escalation's keys
/// ([`KEYS`], SPEC §5).
const LINK: &str = "explore_url";

/// The keys of `sample` besides the event keys of SPEC §4.
const SAMPLE_EXTRA: &str = "labels";

/// Instructions one render may run: far more than any message needs, so that a loop over a
/// large `range` fails (at `check`) instead of holding up the receiver's thread.
const FUEL: u64 = 100_000;

/// The one template of an environment.
const NAME: &str = "template";

/// Where the docs describe templates.
const DOC: &str = "see docs/routing.md#message-templates";

/// The markup a template's values are escaped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// Slack mrkdwn: backticks become `ˋ`, then `&`, `<`, `>` become entities.
    Slack,
    /// The markdowns of DingTalk, WeCom and Feishu `lark_md`: [`render::neutral_md`].
    Markdown,
    /// Plain text (a mail's text part): control characters and ANSI sequences shown escaped.
    Text,
}

impl Markup {
    /// A value as it may appear in this markup: line by line, cleaned like the built-in layout
    /// ([`render::display_line`]), then escaped.
    pub fn escape(self, value: &str) -> String {
        value
            .split('\n')
            .map(|line| {
                let line = render::display_line(line);
                match self {
                    Markup::Slack => render::slack_escape(&render::no_backticks(&line)),
                    Markup::Markdown => render::neutral_md(&line),
                    Markup::Text => line,
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The receiver's explore link (its config's URL with the URL-encoded LogQL), made safe
    /// as a link target: characters that could end the target or the link are
    /// percent-encoded, and Slack gets its `&amp;`.
    fn link(self, url: &str) -> String {
        let mut out = String::with_capacity(url.len() + 8);
        for c in render::display_line(url).chars() {
            match c {
                '<' | '>' | '|' | '(' | ')' | '[' | ']' | '"' | '`' | ' ' => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
                '&' if self == Markup::Slack => out.push_str("&amp;"),
                c => out.push(c),
            }
        }
        out
    }
}

/// The explore link in a template's context: printed as a link ([`Markup::link`]), not
/// escaped as text. Anything made from it (`explore_url ~ "x"`, a filter) is a plain string,
/// and escaped as text.
#[derive(Debug)]
struct Link(String);

impl Object for Link {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What is wrong with a template: the line inside it when minijinja knows it, what, and how to
/// fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub problem: String,
    pub fix: String,
}

/// A compiled, checked template for one receiver.
#[derive(Clone)]
pub struct Template {
    markup: Markup,
    source: Arc<str>,
    env: Arc<Environment<'static>>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Template({:?}, {} bytes)",
            self.markup,
            self.source.len()
        )
    }
}

/// Two templates are the same when their text and markup are: what a reload compares.
impl PartialEq for Template {
    fn eq(&self, other: &Template) -> bool {
        self.markup == other.markup && self.source == other.source
    }
}

impl Template {
    /// Compiles `source` and checks it: a syntax error, variables that are not in the context
    /// (anywhere in the template, taken branch or not), and any error of one render of
    /// [`sample_escalation`] with `explore_url` (the receiver's, as configured).
    pub fn compile(
        source: &str,
        markup: Markup,
        explore_url: Option<&str>,
    ) -> Result<Template, Vec<Problem>> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_formatter(move |out, state, value| print_value(markup, out, state, value));
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| vec![problem(&e)])?;
        let template = Template {
            markup,
            source: source.into(),
            env: Arc::new(env),
        };
        template.check(explore_url)?;
        Ok(template)
    }

    fn check(&self, explore_url: Option<&str>) -> Result<(), Vec<Problem>> {
        let unknown = self.unknown_variables();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let esc = sample_escalation("check", "build-01".into());
        let link = render::explore_link(explore_url, &esc.loki_query);
        self.render(&esc, link).map(drop).map_err(|e| vec![e])
    }

    /// Every variable the template reads that the context does not have, at the line of its
    /// first use. `sample.KEY` is checked too; `group` holds the route's `group_by` keys, and
    /// `sample.fields` and `sample.labels` whatever the event has, so their keys are not.
    fn unknown_variables(&self) -> Vec<Problem> {
        let Ok(t) = self.env.get_template(NAME) else {
            return Vec::new();
        };
        let globals: Vec<&str> = self.env.globals().map(|(name, _)| name).collect();
        let mut names: Vec<String> = t.undeclared_variables(true).into_iter().collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let mut parts = name.split('.');
            let top = parts.next().unwrap_or("");
            let known = match (top, parts.next()) {
                ("sample", Some(key)) => EVENT_KEYS.contains(&key) || key == SAMPLE_EXTRA,
                (top, _) => KEYS.contains(&top) || top == LINK || globals.contains(&top),
            };
            if !known {
                out.push(Problem {
                    line: first_line_of(&self.source, &name),
                    problem: format!("unknown variable `{name}`"),
                    fix: format!(
                        "use one of {}, {LINK}, and sample.{}, sample.{SAMPLE_EXTRA}; {DOC}",
                        KEYS.join(", "),
                        EVENT_KEYS.join(", sample."),
                    ),
                });
            }
        }
        out
    }

    /// The template's text for `esc`; `link` is the receiver's explore link for it.
    pub fn render(&self, esc: &Escalation, link: Option<String>) -> Result<String, Problem> {
        let t = self.env.get_template(NAME).map_err(|e| problem(&e))?;
        t.render(context(esc, link)).map_err(|e| problem(&e))
    }

    /// [`Template::render`] for receiver `receiver`, or `None` when it fails (with data a check
    /// could not foresee, e.g. a missing `sample.fields` key): logged, and the caller uses the
    /// built-in layout, so that the escalation still reaches its receiver.
    pub fn body(&self, receiver: &str, esc: &Escalation, link: Option<String>) -> Option<String> {
        match self.render(esc, link) {
            Ok(text) => Some(text),
            Err(p) => {
                let line = p.line.map(|l| format!(" line {l}")).unwrap_or_default();
                tracing::warn!(
                    receiver,
                    route = %esc.route,
                    "template{line} failed ({}); the built-in layout is used",
                    p.problem
                );
                None
            }
        }
    }

    /// The markup this template's values are escaped for.
    pub fn markup(&self) -> Markup {
        self.markup
    }
}

/// The formatter: every value printed is escaped for `markup`, whether marked safe or not and
/// whatever the auto-escape state, except the explore link, which is made safe as a link.
/// `none` prints nothing.
fn print_value(
    markup: Markup,
    out: &mut Output,
    _state: &State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    let text = if let Some(link) = value.downcast_object_ref::<Link>() {
        markup.link(&link.0)
    } else if value.is_none() {
        return Ok(());
    } else {
        markup.escape(&value.to_string())
    };
    out.write_str(&text).map_err(minijinja::Error::from)
}

/// The context of one render: the escalation's [`KEYS`] and [`LINK`], with its values as its NDJSON has
/// them (times in RFC 3339, the level's name, the fingerprint in hex).
fn context(esc: &Escalation, link: Option<String>) -> Value {
    let json = serde_json::to_value(esc).unwrap_or_default();
    let mut ctx: BTreeMap<&str, Value> = KEYS
        .iter()
        .map(|&k| (k, Value::from_serialize(&json[k])))
        .collect();
    let link = link.map_or(Value::from(()), |l| Value::from_object(Link(l)));
    ctx.insert(LINK, link);
    Value::from_iter(ctx)
}

fn problem(e: &minijinja::Error) -> Problem {
    let problem = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    let fix = match e.kind() {
        minijinja::ErrorKind::SyntaxError => {
            format!("fix the syntax (Jinja2, as minijinja reads it); {DOC}")
        }
        minijinja::ErrorKind::UndefinedError => format!(
            "a value the sample escalation does not have: test it first, e.g. {{% if \"key\" in sample.fields %}}; {DOC}"
        ),
        minijinja::ErrorKind::OutOfFuel => {
            format!("the template runs too long: loop over less; {DOC}")
        }
        _ => format!("the template failed on a sample escalation; {DOC}"),
    };
    Problem {
        line: e.line(),
        problem,
        fix,
    }
}

/// The 1-based line of the first place `name` (`foo` or `sample.foo`) appears as a whole word.
fn first_line_of(source: &str, name: &str) -> Option<usize> {
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    source.match_indices(name).find_map(|(at, _)| {
        let before = source[..at].chars().next_back();
        let after = source[at + name.len()..].chars().next();
        let whole =
            !before.is_some_and(word) && !after.is_some_and(|c| c.is_alphanumeric() || c == '_');
        whole.then(|| source[..at].matches('\n').count() + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::escalation;

    const HOSTILE: &str =
        "ERROR <!channel> <@U1> <at id=all></at> @all [x](https://evil.example) ``` *b* <b>";

    fn render(source: &str, markup: Markup, line: &str) -> String {
        let t = Template::compile(source, markup, None).unwrap();
        t.render(&escalation(line), None).unwrap()
    }

    #[test]
    fn slack_values_are_escaped_even_when_marked_safe() {
        for source in [
            "{{ sample.line }}",
            "{{ sample.line|safe }}",
            "{% autoescape false %}{{ sample.line|safe }}{% endautoescape %}",
            "{% set x %}{{ sample.line|safe }}{% endset %}{{ x|safe }}",
            "{% filter upper %}{{ message|safe }}{% endfilter %}",
        ] {
            let out = render(source, Markup::Slack, HOSTILE);
            assert!(!out.contains('<') && !out.contains('>'), "{source}: {out}");
            assert!(!out.contains('`'), "{source}: {out}");
        }
        assert_eq!(
            render("*{{ sample.line }}*", Markup::Slack, "a <!here> & `b`"),
            "*a &lt;!here&gt; &amp; ˋbˋ*"
        );
    }

    #[test]
    fn markdown_values_cannot_mention_link_or_style() {
        let out = render(
            "**{{ message|safe }}**\n{{ context|join('\n') }}",
            Markup::Markdown,
            HOSTILE,
        );
        let value = out.trim_start_matches("**");
        for bad in ["<", "@all", "](", "://", "`", "*b*"] {
            assert!(!value.contains(bad), "{bad} in {out}");
        }
        assert!(out.starts_with("**ERROR ＜！channel＞"), "{out}");
    }

    #[test]
    fn text_values_are_cleaned_of_control_characters() {
        let out = render(
            "{{ sample.line }}",
            Markup::Text,
            "a\u{1b}[31mred\u{1b}[0m\rb\u{202e}c",
        );
        assert_eq!(out, "ared\\u{d}b\\u{202e}c");
    }

    #[test]
    fn each_line_of_a_value_is_escaped_on_its_own() {
        assert_eq!(Markup::Markdown.escape("- a\n# b\n> c"), "－ a\n＃ b\n＞ c");
        assert_eq!(Markup::Slack.escape("x\n<!here>"), "x\n&lt;!here&gt;");
    }

    #[test]
    fn the_explore_link_stays_a_link_and_nothing_made_from_it_does() {
        let e = escalation("ERROR db timeout");
        let link = render::explore_link(
            Some("https://g.example/x?a=1&left={loki_query}"),
            &e.loki_query,
        );
        let slack = Template::compile("<{{ explore_url }}|open>", Markup::Slack, None).unwrap();
        let out = slack.render(&e, link.clone()).unwrap();
        assert!(
            out.starts_with("<https://g.example/x?a=1&amp;left=%7B") && out.ends_with("|open>"),
            "{out}"
        );
        let md = Template::compile(
            "[open]({{ explore_url }}) {{ explore_url ~ '' }}",
            Markup::Markdown,
            None,
        )
        .unwrap();
        let out = md
            .render(&e, Some("https://g.example/(x) y".into()))
            .unwrap();
        assert_eq!(
            out,
            "[open](https://g.example/%28x%29%20y) https:/\u{200b}/g.example/（x） y"
        );
        assert_eq!(
            slack.render(&e, None).unwrap(),
            "<|open>",
            "none prints nothing"
        );
    }

    #[test]
    fn the_context_has_every_documented_key() {
        let source: String = KEYS
            .iter()
            .chain([&LINK])
            .map(|k| format!("{k}={{{{ {k} }}}};"))
            .collect();
        let out = render(&source, Markup::Text, "ERROR db timeout");
        assert!(
            out.contains("route=errors;") && out.contains("kind=first;"),
            "{out}"
        );
        assert!(
            out.contains("level=error;") && out.contains("first_seen=2023-11-14T22:13:20Z;"),
            "{out}"
        );
        assert!(out.contains("explore_url=;"), "{out}");
        let sample: String = EVENT_KEYS
            .iter()
            .chain([&SAMPLE_EXTRA])
            .map(|k| format!("{{{{ sample.{k} }}}}"))
            .collect();
        let out = render(&sample, Markup::Text, "ERROR x");
        assert!(out.contains("ERROR x") && out.contains("jenkins"), "{out}");
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let err = Template::compile("ok\n{{ message }\n", Markup::Text, None).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].line, Some(2), "{err:?}");
        assert!(err[0].problem.starts_with("syntax error"), "{err:?}");
    }

    #[test]
    fn unknown_variables_are_found_in_branches_not_taken() {
        let err = Template::compile(
            "{{ message }}\n{% if ci_run_id %}\n{{ run_id }} {{ sample.lien }}\n{% endif %}{% for l in context %}{{ loop.index }}{{ l }}{% endfor %}{{ range(2)|join }}",
            Markup::Text,
            None,
        )
        .unwrap_err();
        let found: Vec<(Option<usize>, &str)> =
            err.iter().map(|p| (p.line, p.problem.as_str())).collect();
        assert_eq!(
            found,
            [
                (Some(3), "unknown variable `run_id`"),
                (Some(3), "unknown variable `sample.lien`")
            ]
        );
    }

    #[test]
    fn a_render_error_and_a_runaway_loop_are_reported() {
        let err = Template::compile("\n{{ group.nope }}", Markup::Text, None).unwrap_err();
        assert_eq!(
            (err[0].line, err[0].problem.as_str()),
            (Some(2), "undefined value")
        );
        let err = Template::compile(
            "{% for i in range(100000) %}{% for j in range(100) %}{% endfor %}{% endfor %}",
            Markup::Text,
            None,
        )
        .unwrap_err();
        assert!(err[0].problem.contains("fuel"), "{err:?}");
    }
}
