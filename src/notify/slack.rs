//! `slack`: a Slack incoming webhook (WIRE.md §1). Block Kit with a plain-text header, mrkdwn
//! facts, the sample and context in code blocks, and the top-level `text` as the notification
//! fallback. The URL is the credential; there is no signature.
//!
//! Log content is escaped (`&`, `<`, `>` as entities) everywhere mrkdwn is parsed, and sits in
//! code spans or blocks whose backticks are replaced, so it can neither mention anyone nor add
//! a link or styling; so are the values a `template` prints ([`super::template`]). Mentions
//! come only from the `mention` lists of the receiver and the route.

use std::sync::Arc;

use serde_json::{Value, json};

use super::post::Poster;
use super::render::{self, CUT, Layout, Parts};
use super::template::Template;
use super::{Outcome, Sender};
use crate::config::Secret;
use crate::escalation::Escalation;

/// Header `plain_text`: at most 150 characters.
const HEADER_CHARS: usize = 150;
/// Section `text`: at most 3,000 characters; the sample's code block gets this much.
const SAMPLE_CHARS: usize = 2_600;
/// A template's body: one section's `text`, at most 3,000 characters.
const SECTION_CHARS: usize = 3_000;
/// The context's code block: Slack refuses payloads a little over 13k characters in all.
const CONTEXT_CHARS: usize = 1_200;

pub struct Slack {
    url: Secret,
    layout: Layout,
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
            layout: Layout {
                mention,
                explore_url,
                template: None,
            },
            http: Poster::new(name),
        }
    }

    pub fn with_http(mut self, http: Poster) -> Slack {
        self.http = http;
        self
    }

    /// A `template` whose output replaces the fields, sample and context sections.
    pub fn with_template(mut self, template: Option<Template>) -> Slack {
        self.layout.template = template;
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

/// The request body. With a template's body, that body is one mrkdwn section (cut to fit)
/// in place of the fields, sample and context, and the footer has only the mentions: the
/// template shows the link and fingerprint if it wants them.
pub fn payload(esc: &Escalation, parts: &Parts) -> Value {
    let headline = render::headline(esc);
    let mentions: Vec<String> = parts.mention.iter().map(|m| mention(m)).collect();
    let mut fallback = render::slack_escape(&headline);
    if !mentions.is_empty() {
        fallback = format!("{} {fallback}", mentions.join(" "));
    }
    let mut blocks = vec![json!({"type": "header", "text": {"type": "plain_text",
        "text": render::cut_chars(&headline, HEADER_CHARS), "emoji": true}})];
    let mut footer = Vec::new();
    match &parts.body {
        Some(body) => {
            let text = render::fit_text(body, SECTION_CHARS, |s| s.chars().count());
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
        }
        None => {
            blocks.extend(built_in_sections(esc));
            if let Some(link) = &parts.link {
                footer.push(format!("<{}|Open in Grafana>", link.replace('&', "&amp;")));
            }
            if let Some(fp) = esc.fingerprint {
                footer.push(format!("fingerprint `{:016x}`", fp.0));
            }
        }
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

/// The facts as fields, the sample and the context in code blocks.
fn built_in_sections(esc: &Escalation) -> Vec<Value> {
    let fields: Vec<Value> = render::facts(esc)
        .into_iter()
        .map(|(name, value)| {
            let value = render::slack_escape(&render::no_backticks(&value));
            json!({"type": "mrkdwn", "text": format!("*{name}*\n`{value}`")})
        })
        .collect();
    let mut blocks = vec![json!({"type": "section", "fields": fields})];
    let (sample, _) = code_block(&render::sample_lines(esc), SAMPLE_CHARS);
    blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
        "text": format!("*Sample*\n{sample}")}}));
    let context = render::context_lines(esc);
    if !context.is_empty() {
        let (context, _) = code_block(&context, CONTEXT_CHARS);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("*Context*\n{context}")}}));
    }
    blocks
}

impl Sender for Slack {
    fn send(&mut self, esc: &Escalation, _key: &str) -> Outcome {
        let body = payload(esc, &self.layout.parts(self.http.receiver(), esc));
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
