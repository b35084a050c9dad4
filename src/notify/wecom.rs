//! `wecom`: a WeCom (企业微信) group robot (WIRE.md §4). A `markdown` message of at most 4,096
//! bytes (UTF-8): a heading, the level in a `<font>` colour, the facts, the sample and context
//! as one-line code spans, a Grafana link. The key in the URL is the credential; there is no
//! signature. The body's `errcode` decides: 0 is delivered, 45009 (frequency limit) and -1
//! (busy) are retried, anything else is not.
//!
//! Log content goes through [`render::neutral_md`] (no `<@user>`, `<font`, links or markup),
//! also in the values a `template` prints ([`super::template`]); mentions (`<@userid>`) come
//! only from the `mention` lists of the receiver and the route.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::post::{CodeRules, Poster, judge_code};
use super::render::{self, CUT, Layout, Parts};
use super::template::Template;
use super::{Outcome, Sender};
use crate::config::Secret;
use crate::escalation::Escalation;

/// The markdown content limit, in bytes.
pub const CONTENT_BYTES: usize = 4096;
/// `errcode` of "api freq out of limit": wait for the minute window.
const RATE_LIMITED: i64 = 45009;
const WINDOW: Duration = Duration::from_secs(60);

pub struct WeCom {
    url: Secret,
    layout: Layout,
    http: Poster,
}

impl WeCom {
    pub fn new(
        name: Arc<str>,
        url: Secret,
        mention: Vec<String>,
        explore_url: Option<String>,
    ) -> WeCom {
        WeCom {
            url,
            layout: Layout {
                mention,
                explore_url,
                template: None,
            },
            http: Poster::new(name),
        }
    }

    pub fn with_http(mut self, http: Poster) -> WeCom {
        self.http = http;
        self
    }

    /// A `template` whose output replaces everything under the heading but the mentions.
    pub fn with_template(mut self, template: Option<Template>) -> WeCom {
        self.layout.template = template;
        self
    }
}

fn colour(esc: &Escalation) -> &'static str {
    use crate::event::Level;
    match esc.level {
        Some(Level::Critical | Level::Error | Level::Warn) => "warning",
        Some(Level::Notice | Level::Info) => "info",
        _ => "comment",
    }
}

fn code_lines(out: &mut String, lines: &[String], budget: usize) {
    let lines: Vec<String> = lines.iter().map(|l| render::neutral_md(l)).collect();
    // Each line is shown as "`line`\n".
    let (kept, cut) = render::fit(&lines, budget, |s| s.len() + 2);
    for l in &kept {
        if !l.trim().is_empty() {
            out.push_str(&format!("`{l}`\n"));
        }
    }
    if cut {
        out.push_str(CUT);
        out.push('\n');
    }
}

/// The request body; its content is at most [`CONTENT_BYTES`]: the heading with the level's
/// colour, then a template's body (cut to fit) or the built-in one, then the mentions.
pub fn payload(esc: &Escalation, parts: &Parts) -> Value {
    let mut content = format!(
        "### {} <font color=\"{}\">{}</font> · {} · {}\n",
        render::level_marker(esc.level),
        colour(esc),
        render::level_word(esc.level),
        render::neutral_md(&render::service(esc)),
        render::kind_phrase(esc),
    );
    let mentions: String = parts.mention.iter().map(|id| format!("<@{id}>")).collect();
    match &parts.body {
        Some(body) => {
            let room = CONTENT_BYTES.saturating_sub(content.len() + mentions.len() + 2);
            content.push_str(&render::fit_text(body, room, str::len));
            content.push('\n');
        }
        None => built_in_body(&mut content, esc, parts.link.as_deref(), mentions.len()),
    }
    content.push_str(&mentions);
    // The heading alone can exceed the limit only with huge facts; never send over it.
    let content = crate::escalation::cut_at(&content, CONTENT_BYTES).to_string();
    json!({"msgtype": "markdown", "markdown": {"content": content}})
}

/// The message in bold, the facts as quotes, the sample and context as code spans, the link;
/// within what is left of [`CONTENT_BYTES`] once `reserved` more bytes follow.
fn built_in_body(content: &mut String, esc: &Escalation, link: Option<&str>, reserved: usize) {
    content.push_str(&format!(
        "**{}**\n",
        render::neutral_md(&render::message(esc))
    ));
    for (name, value) in render::facts(esc) {
        content.push_str(&format!("> {name}: {}\n", render::neutral_md(&value)));
    }
    let tail = link.map_or_else(String::new, |l| format!("[Open in Grafana]({l})\n"));
    let context = render::context_lines(esc);
    let room = CONTENT_BYTES.saturating_sub(content.len() + tail.len() + reserved + 40);
    let ctx_room = if context.is_empty() { 0 } else { room / 4 };
    content.push_str("Sample:\n");
    code_lines(content, &render::sample_lines(esc), room - ctx_room);
    if !context.is_empty() {
        content.push_str("Context:\n");
        code_lines(content, &context, ctx_room);
    }
    content.push_str(&tail);
}

/// The outcome of a WeCom answer body (HTTP 200).
pub fn judge(receiver: &str, body: &str) -> Outcome {
    judge_code(
        receiver,
        body,
        &CodeRules {
            provider: "WeCom",
            code: &["errcode"],
            message: &["errmsg"],
            retry: &[(RATE_LIMITED, Some(WINDOW)), (-1, None)],
        },
    )
}

impl Sender for WeCom {
    fn send(&mut self, esc: &Escalation, _key: &str) -> Outcome {
        let body = payload(esc, &self.layout.parts(self.http.receiver(), esc));
        let body = serde_json::to_vec(&body).unwrap_or_default();
        self.http.post_coded(self.url.expose(), body, judge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::escalation;

    #[test]
    fn content_stays_within_the_byte_limit_and_says_it_was_cut() {
        let line = "［界］".repeat(2000);
        let mut e = escalation(&format!("ERROR {line}\n{line}"));
        e.sample.line = format!("{line}\n{line}\n{line}");
        let v = payload(&e, &Parts::default());
        let content = v["markdown"]["content"].as_str().unwrap();
        assert!(content.len() <= CONTENT_BYTES, "{}", content.len());
        assert!(content.contains(CUT), "{content}");
    }
}
