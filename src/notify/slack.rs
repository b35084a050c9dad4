//! `slack`: a Slack incoming webhook (WIRE.md §1). Block Kit with a plain-text header, mrkdwn
//! facts, the sample and context in code blocks, and the top-level `text` as the notification
//! fallback. The URL is the credential; there is no signature.
//!
//! Log content is escaped (`&`, `<`, `>` as entities) everywhere mrkdwn is parsed, and sits in
//! code spans or blocks whose backticks are replaced, so it can neither mention anyone nor add
//! a link or styling. Mentions come only from the receiver's `mention` list.

use std::sync::Arc;

use serde_json::{Value, json};

use super::post::Poster;
use super::render::{self, CUT};
use super::{Outcome, Sender};
use crate::config::Secret;
use crate::escalation::Escalation;

/// Header `plain_text`: at most 150 characters.
const HEADER_CHARS: usize = 150;
/// Section `text`: at most 3,000 characters; the sample's code block gets this much.
const SAMPLE_CHARS: usize = 2_600;
/// The context's code block: Slack refuses payloads a little over 13k characters in all.
const CONTEXT_CHARS: usize = 1_200;

pub struct Slack {
    url: Secret,
    mention: Vec<String>,
    explore_url: Option<String>,
    http: Poster,
}

impl Slack {
    pub fn new(
        name: Arc<str>,
        url: Secret,
        mention: Vec<String>,
        explore_url: Option<String>,
    ) -> Slack {
        Slack {
            url,
            mention,
            explore_url,
            http: Poster::new(name),
        }
    }

    pub fn with_http(mut self, http: Poster) -> Slack {
        self.http = http;
        self
    }
}

/// A configured mention: `here`, `channel`, `everyone` as `<!…>`, `S…` user groups as
/// `<!subteam^S…>`, anything else as a user `<@U…>`.
fn mention(id: &str) -> String {
    match id {
        "here" | "channel" | "everyone" => format!("<!{id}>"),
        s if s.starts_with('S') => format!("<!subteam^{s}>"),
        s => format!("<@{s}>"),
    }
}

fn code_block(lines: &[String], budget: usize) -> (String, bool) {
    let escaped: Vec<String> = lines
        .iter()
        .map(|l| render::slack_escape(&render::no_backticks(l)))
        .collect();
    let (kept, cut) = render::fit(&escaped, budget, |s| s.chars().count());
    let mut body = kept.join("\n");
    if body.trim().is_empty() {
        body = "(empty)".into();
    }
    let mut text = format!("```{body}```");
    if cut {
        text.push('\n');
        text.push_str(CUT);
    }
    (text, cut)
}

/// The request body.
pub fn payload(esc: &Escalation, mention_ids: &[String], explore_url: Option<&str>) -> Value {
    let headline = render::headline(esc);
    let mentions: Vec<String> = mention_ids.iter().map(|m| mention(m)).collect();
    let mut fallback = render::slack_escape(&headline);
    if !mentions.is_empty() {
        fallback = format!("{} {fallback}", mentions.join(" "));
    }
    let fields: Vec<Value> = render::facts(esc)
        .into_iter()
        .map(|(name, value)| {
            let value = render::slack_escape(&render::no_backticks(&value));
            json!({"type": "mrkdwn", "text": format!("*{name}*\n`{value}`")})
        })
        .collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text",
            "text": render::cut_chars(&headline, HEADER_CHARS), "emoji": true}}),
        json!({"type": "section", "fields": fields}),
    ];
    let (sample, _) = code_block(&render::sample_lines(esc), SAMPLE_CHARS);
    blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
        "text": format!("*Sample*\n{sample}")}}));
    let context = render::context_lines(esc);
    if !context.is_empty() {
        let (context, _) = code_block(&context, CONTEXT_CHARS);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("*Context*\n{context}")}}));
    }
    let mut footer = Vec::new();
    if let Some(link) = render::explore_link(explore_url, esc) {
        footer.push(format!("<{}|Open in Grafana>", link.replace('&', "&amp;")));
    }
    if let Some(fp) = esc.fingerprint {
        footer.push(format!("fingerprint `{:016x}`", fp.0));
    }
    if !mentions.is_empty() {
        footer.push(mentions.join(" "));
    }
    if !footer.is_empty() {
        blocks.push(json!({"type": "context", "elements": [
            {"type": "mrkdwn", "text": footer.join(" · ")}]}));
    }
    json!({"text": fallback, "blocks": blocks})
}

impl Sender for Slack {
    fn send(&mut self, esc: &Escalation, _key: &str) -> Outcome {
        let body = payload(esc, &self.mention, self.explore_url.as_deref());
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let answer = match self.http.post(self.url.expose(), &[], body) {
            Ok(a) => a,
            Err(o) => return o,
        };
        if answer.status == 200 {
            return Outcome::Accepted {
                answer: render_answer(&answer.body),
            };
        }
        self.http.by_status(&answer, &answer.body)
    }
}

fn render_answer(body: &str) -> String {
    super::post::short(body)
}
