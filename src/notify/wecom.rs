//! `wecom`: a WeCom (企业微信) group robot (WIRE.md §4). A `markdown` message of at most 4,096
//! bytes (UTF-8): a heading, the level in a `<font>` colour, the facts, the sample and context
//! as one-line code spans, a Grafana link. The key in the URL is the credential; there is no
//! signature. The body's `errcode` decides: 0 is delivered, 45009 (frequency limit) and -1
//! (busy) are retried, anything else is not.
//!
//! Log content goes through [`render::neutral_md`] (no `<@user>`, `<font`, links or markup);
//! mentions (`<@userid>`) come only from the receiver's `mention` list.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::post::{CodeRules, Poster, judge_code};
use super::render::{self, CUT};
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
    mention: Vec<String>,
    explore_url: Option<String>,
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
            mention,
            explore_url,
            http: Poster::new(name),
        }
    }

    pub fn with_http(mut self, http: Poster) -> WeCom {
        self.http = http;
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

/// The request body; its content is at most [`CONTENT_BYTES`].
pub fn payload(esc: &Escalation, mention: &[String], explore_url: Option<&str>) -> Value {
    let mut head = format!(
        "### {} <font color=\"{}\">{}</font> · {} · {}\n**{}**\n",
        render::level_marker(esc.level),
        colour(esc),
        render::level_word(esc.level),
        render::neutral_md(&render::service(esc)),
        render::kind_phrase(esc),
        render::neutral_md(&render::message(esc)),
    );
    for (name, value) in render::facts(esc) {
        head.push_str(&format!("> {name}: {}\n", render::neutral_md(&value)));
    }
    let mut tail = String::new();
    if let Some(link) = render::explore_link(explore_url, esc) {
        tail.push_str(&format!("[Open in Grafana]({link})\n"));
    }
    for id in mention {
        tail.push_str(&format!("<@{id}>"));
    }
    let context = render::context_lines(esc);
    let room = CONTENT_BYTES.saturating_sub(head.len() + tail.len() + 40);
    let ctx_room = if context.is_empty() { 0 } else { room / 4 };
    let mut content = head;
    content.push_str("Sample:\n");
    code_lines(&mut content, &render::sample_lines(esc), room - ctx_room);
    if !context.is_empty() {
        content.push_str("Context:\n");
        code_lines(&mut content, &context, ctx_room);
    }
    content.push_str(&tail);
    // The head alone can exceed the limit only with huge facts; never send over it.
    let content = crate::escalation::cut_at(&content, CONTENT_BYTES).to_string();
    json!({"msgtype": "markdown", "markdown": {"content": content}})
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
        let body = payload(esc, &self.mention, self.explore_url.as_deref());
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
        let v = payload(&e, &[], None);
        let content = v["markdown"]["content"].as_str().unwrap();
        assert!(content.len() <= CONTENT_BYTES, "{}", content.len());
        assert!(content.contains(CUT), "{content}");
    }
}
