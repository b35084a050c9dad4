//! What the chat receivers (`slack`, `feishu`, `dingtalk`, `wecom`) say about an escalation,
//! before any provider's markup: the headline, the facts, the sample and context lines, the
//! Grafana link; and the escaping of log content for each provider's markup.
//!
//! Owns: the wording (`first` reads "New", `repeat` "Still firing (N more)", `summary`
//! "Summary: N in the window"), cutting the sample (or a template's body) to a budget with a
//! visible "…cut", the escapers, and what a chat receiver's config adds to every message
//! ([`Layout`]: its mentions and the route's, its explore link, its template's body). Must not:
//! build a provider's JSON (each sender does), or let text from a log line reach a provider
//! unescaped.

use super::template::Template;
use crate::escalation::{Escalation, Kind, clean, clean_max};
use crate::event::Level;

/// The marker shown where a sample or context was cut to fit the provider's limit.
pub const CUT: &str = "…cut";
/// Context lines shown (the last ones, leading up to the sample).
pub const CONTEXT_LINES: usize = 5;

/// A level's word, emoji marker and colour family.
pub fn level_word(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Critical) => "CRITICAL",
        Some(Level::Error) => "ERROR",
        Some(Level::Warn) => "WARN",
        Some(Level::Notice) => "NOTICE",
        Some(Level::Info) => "INFO",
        Some(Level::Debug) => "DEBUG",
        Some(Level::Trace) => "TRACE",
        None => "LOG",
    }
}

/// An emoji marker for the level, first in every headline.
pub fn level_marker(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Critical | Level::Error) => "🔴",
        Some(Level::Warn) => "🟠",
        Some(Level::Info) => "🔵",
        _ => "⚪",
    }
}

/// How the kind reads: "New", "Still firing (N more)", "Summary: N in the window".
pub fn kind_phrase(esc: &Escalation) -> String {
    match esc.kind {
        Kind::First => "New".to_string(),
        Kind::Repeat => format!("Still firing ({} more)", esc.suppressed),
        Kind::Summary => format!("Summary: {} in the window", esc.count),
    }
}

/// The service, or `-` (log content, cleaned but not escaped).
pub fn service(esc: &Escalation) -> String {
    esc.service
        .as_deref()
        .map_or_else(|| "-".to_string(), clean)
}

/// The first line of the message, else of the sample (log content, cleaned, not escaped).
pub fn message(esc: &Escalation) -> String {
    let m = esc.message.as_deref().unwrap_or(&esc.sample.line);
    clean(m.lines().next().unwrap_or(""))
}

/// "🔴 ERROR · api · New: db timeout after 30s" (contains log content; not escaped).
pub fn headline(esc: &Escalation) -> String {
    format!(
        "{} {} · {} · {}: {}",
        level_marker(esc.level),
        level_word(esc.level),
        service(esc),
        kind_phrase(esc),
        message(esc)
    )
}

/// "5 · 4 suppressed".
pub fn counts(esc: &Escalation) -> String {
    format!("{} · {} suppressed", esc.count, esc.suppressed)
}

/// The facts shown as `name: value` pairs. Every value may hold log content: escape it.
pub fn facts(esc: &Escalation) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("Route", clean(&esc.route)),
        ("Count", counts(esc)),
        ("First seen", esc.first_seen.to_string()),
        ("Last seen", esc.last_seen.to_string()),
    ];
    if let Some(run) = &esc.ci_run_id {
        f.push(("Run", clean(run)));
    }
    if !esc.host.is_empty() {
        f.push(("Host", clean(&esc.host)));
    }
    if let Some(p) = &esc.pattern {
        f.push(("Pattern", clean(p)));
    }
    f
}

/// Characters of one displayed sample or context line; the provider's budget usually cuts
/// first (with [`CUT`]).
const LINE_CHARS: usize = 4_000;

/// One displayed line of log content: leading tabs as spaces, then [`clean_max`].
pub fn display_line(line: &str) -> String {
    let rest = line.trim_start_matches('\t');
    let tabs = line.len() - rest.len();
    clean_max(&format!("{}{rest}", "    ".repeat(tabs.min(4))), LINE_CHARS)
}

/// The sample's lines, cleaned (not escaped).
pub fn sample_lines(esc: &Escalation) -> Vec<String> {
    esc.sample.line.lines().map(display_line).collect()
}

/// The last [`CONTEXT_LINES`] context lines, cleaned (not escaped).
pub fn context_lines(esc: &Escalation) -> Vec<String> {
    let skip = esc.context.len().saturating_sub(CONTEXT_LINES);
    esc.context[skip..]
        .iter()
        .map(|l| display_line(l))
        .collect()
}

/// Escaped lines that fit in `budget` as measured by `size` (one separator per line
/// counted), and whether any were cut. A line that does not fit whole is cut at a character
/// boundary; the caller shows [`CUT`] when the second value is true.
pub fn fit(lines: &[String], budget: usize, size: impl Fn(&str) -> usize) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut used = 0;
    for line in lines {
        let need = size(line) + 1;
        if used + need <= budget {
            used += need;
            out.push(line.clone());
            continue;
        }
        // The longest prefix that fits (sizes grow with the prefix): a binary search over
        // the character boundaries.
        let ends: Vec<usize> = line.char_indices().map(|(i, c)| i + c.len_utf8()).collect();
        let fits = |end: usize| used + size(&line[..end]) < budget;
        let n = ends.partition_point(|&end| fits(end));
        let part = n
            .checked_sub(1)
            .map_or("", |k| &line[..ends[k]])
            .to_string();
        if !part.is_empty() {
            out.push(part);
        }
        return (out, true);
    }
    (out, false)
}

/// `text` (a template's body) cut at a line end to fit in `budget` as measured by `size`, then
/// [`CUT`] on a line of its own when anything was cut; `(empty)` when it is blank, because no
/// provider takes an empty text.
pub fn fit_text(text: &str, budget: usize, size: impl Fn(&str) -> usize) -> String {
    if text.trim().is_empty() {
        return "(empty)".into();
    }
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let (kept, cut) = fit(&lines, budget.saturating_sub(size(CUT) + 1), &size);
    if !cut {
        return text.trim_end().to_string();
    }
    let mut out = kept.join("\n");
    out.push('\n');
    out.push_str(CUT);
    out
}

/// What a chat receiver's config adds to every message.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The receiver's `mention` ids.
    pub mention: Vec<String>,
    /// The receiver's `explore_url` link template.
    pub explore_url: Option<String>,
    /// The receiver's `template`, whose output replaces the built-in body.
    pub template: Option<Template>,
}

/// The parts of one message that come from the config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parts {
    /// The receiver's `mention` ids, then the route's that it does not have.
    pub mention: Vec<String>,
    /// The explore link for this escalation.
    pub link: Option<String>,
    /// The template's text for this escalation; `None`: the built-in layout.
    pub body: Option<String>,
}

impl Layout {
    /// The parts of the message for `esc`, to receiver `receiver`.
    pub fn parts(&self, receiver: &str, esc: &Escalation) -> Parts {
        let link = explore_link(self.explore_url.as_deref(), &esc.loki_query);
        let body = self
            .template
            .as_ref()
            .and_then(|t| t.body(receiver, esc, link.clone()));
        let mut mention = self.mention.clone();
        // The route's ids were checked by the config, but they come back from the outbox on
        // disk: an id a provider's mention markup could misread is dropped.
        for id in &esc.mention {
            if crate::config::is_mention_id(id) && !mention.contains(id) {
                mention.push(id.clone());
            }
        }
        Parts {
            mention,
            link,
            body,
        }
    }
}

/// The Grafana (or any) link of a receiver's `explore_url` for this escalation: the template
/// with `{loki_query}` (also spelt `{loki_query_urlencoded}`) replaced by the URL-encoded
/// LogQL. `None` when there is no template or no query.
pub fn explore_link(template: Option<&str>, loki_query: &str) -> Option<String> {
    let template = template?;
    if loki_query.is_empty() {
        return None;
    }
    let q: String = url::form_urlencoded::byte_serialize(loki_query.as_bytes()).collect();
    Some(
        template
            .replace("{loki_query_urlencoded}", &q)
            .replace("{loki_query}", &q),
    )
}

/// Slack mrkdwn: `&`, `<`, `>` as entities (and nothing else), so `<!channel>`, `<@U1>` and
/// `<url|label>` from a log line show as text.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text that goes inside a code span or block: a backtick becomes `ˋ` (U+02CB), so no
/// sequence of them can close the block.
pub fn no_backticks(s: &str) -> String {
    s.replace('`', "ˋ")
}

/// Log content for a markdown that has no reliable escape (DingTalk, WeCom, Feishu
/// `lark_md`): every character markdown or the provider's tags could act on becomes its
/// full-width twin (`[`→`［`, `<`→`＜`, `*`→`＊`, `@`→`＠`, …) and `://` gets a zero-width
/// space, so no link, image, mention (`<@u>`, `<at id=all>`, `@all`), heading, quote or
/// emphasis can come from a log line; the text still reads the same.
pub fn neutral_md(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '[' => out.push('［'),
            ']' => out.push('］'),
            '(' => out.push('（'),
            ')' => out.push('）'),
            '<' => out.push('＜'),
            '>' => out.push('＞'),
            '*' => out.push('＊'),
            '_' => out.push('＿'),
            '`' => out.push('ˋ'),
            '#' => out.push('＃'),
            '!' => out.push('！'),
            '|' => out.push('｜'),
            '~' => out.push('～'),
            '@' => out.push('＠'),
            '&' => out.push('＆'),
            '\\' => out.push('＼'),
            c => out.push(c),
        }
    }
    // A list item, rule or setext heading starts a line with one of these.
    if let Some(first) = out.chars().next().filter(|c| matches!(c, '-' | '+' | '=')) {
        let twin = match first {
            '-' => "－",
            '+' => "＋",
            _ => "＝",
        };
        out.replace_range(..1, twin);
    }
    out.replace("://", ":/\u{200b}/")
}

/// `s` cut to at most `max` characters, ending in `…` when cut.
pub fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::escalation;

    #[test]
    fn kinds_read_differently() {
        let mut e = escalation("ERROR db timeout");
        assert_eq!(headline(&e), "🔴 ERROR · api · New: ERROR db timeout");
        e.kind = Kind::Repeat;
        e.suppressed = 7;
        assert!(headline(&e).contains("Still firing (7 more)"));
        e.kind = Kind::Summary;
        e.count = 12;
        assert!(headline(&e).contains("Summary: 12 in the window"));
        assert!(headline(&e).starts_with("🔴 ERROR · api · "));
    }

    #[test]
    fn fit_cuts_at_the_budget_and_says_so() {
        let lines: Vec<String> = vec!["aaaa".into(), "bbbb".into(), "cccc".into()];
        assert_eq!(fit(&lines, 100, str::len), (lines.clone(), false));
        let (kept, cut) = fit(&lines, 8, str::len);
        assert_eq!(
            (kept, cut),
            (vec!["aaaa".to_string(), "bb".to_string()], true)
        );
    }

    #[test]
    fn explore_link_url_encodes_the_query() {
        let e = escalation("ERROR db timeout");
        let l = explore_link(
            Some("https://g.example/explore?left={loki_query}"),
            &e.loki_query,
        )
        .unwrap();
        assert!(l.starts_with("https://g.example/explore?left=%7B"), "{l}");
        assert!(
            !l.contains(' ') && !l.contains('"') && !l.contains('|'),
            "{l}"
        );
        assert_eq!(explore_link(None, &e.loki_query), None);
    }

    #[test]
    fn a_message_mentions_the_receivers_ids_then_the_routes_new_ones() {
        let layout = Layout {
            mention: vec!["U1".into(), "here".into()],
            ..Layout::default()
        };
        let mut e = escalation("ERROR db timeout");
        assert_eq!(layout.parts("chat", &e).mention, ["U1", "here"]);
        e.mention = vec!["U2".into(), "U1".into(), "<!channel>".into()];
        assert_eq!(layout.parts("chat", &e).mention, ["U1", "here", "U2"]);
    }

    #[test]
    fn fit_text_cuts_at_a_line_end_and_says_so() {
        assert_eq!(fit_text("a\nb\n", 100, str::len), "a\nb");
        assert_eq!(fit_text(" \n", 100, str::len), "(empty)");
        let text = "aaaa\nbbbb\ncccc\ndddd";
        let cut = fit_text(text, 14, str::len);
        assert!(
            cut.len() <= 14 && cut.ends_with(&format!("\n{CUT}")),
            "{cut}"
        );
        assert!(cut.starts_with("aaaa\n"), "{cut}");
    }

    #[test]
    fn escapers_neutralize_mentions_links_and_fences() {
        assert_eq!(
            slack_escape("<!channel> & <@U1>"),
            "&lt;!channel&gt; &amp; &lt;@U1&gt;"
        );
        assert_eq!(no_backticks("```x```"), "ˋˋˋxˋˋˋ");
        let n = neutral_md("@all <at id=all></at> [x](https://e.example) ![i](u) # h");
        for bad in ["@", "<", "[", "](", "://", "#"] {
            assert!(!n.contains(bad), "{bad} in {n}");
        }
    }
}
