//! `feishu`: a Feishu / Lark custom bot (WIRE.md §2). An `interactive` card: a plain-text
//! title coloured by level, the facts in `lark_md`, the sample and context as `plain_text`
//! (never parsed), a Grafana link. With `secret`, the body carries `timestamp` (seconds) and
//! `sign` = Base64(HMAC-SHA256(key = "timestamp\nsecret", message = empty)). The body's
//! `code` (or `StatusCode`) decides: 0 is delivered, 11232 (frequency limit) is retried.
//!
//! Log content in `lark_md` goes through [`render::neutral_md`], so it cannot add `<at>`,
//! links, images or emphasis; so do the values a `template` prints ([`super::template`]).
//! Mentions come only from the `mention` lists of the receiver and the route.

use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::post::{CodeRules, Poster, judge_code, unix_secs};
use super::render::{self, CUT, Layout, Parts};
use super::template::Template;
use super::{Outcome, Sender};
use crate::config::Secret;
use crate::escalation::Escalation;

/// The documented body limit is 20 KB; the sample and context together (or a template's
/// body) get this many bytes.
const TEXT_BYTES: usize = 12_000;
/// `code` of the frequency limit.
const RATE_LIMITED: i64 = 11232;

pub struct Feishu {
    url: Secret,
    secret: Option<Secret>,
    layout: Layout,
    http: Poster,
}

impl Feishu {
    pub fn new(
        name: Arc<str>,
        url: Secret,
        secret: Option<Secret>,
        mention: Vec<String>,
        explore_url: Option<String>,
    ) -> Feishu {
        Feishu {
            url,
            secret,
            layout: Layout {
                mention,
                explore_url,
                template: None,
            },
            http: Poster::new(name),
        }
    }

    pub fn with_http(mut self, http: Poster) -> Feishu {
        self.http = http;
        self
    }

    /// A `template` whose output (as `lark_md`) replaces the facts, sample and context.
    pub fn with_template(mut self, template: Option<Template>) -> Feishu {
        self.layout.template = template;
        self
    }
}

/// Base64(HMAC-SHA256(key = "timestamp\nsecret", message = "")).
pub fn sign(timestamp: u64, secret: &str) -> String {
    let key = format!("{timestamp}\n{secret}");
    // HMAC takes a key of any length.
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).map(Mac::finalize);
    mac.map(|m| base64::engine::general_purpose::STANDARD.encode(m.into_bytes()))
        .unwrap_or_default()
}

/// The card's header colour for a level.
fn colour(esc: &Escalation) -> &'static str {
    use crate::event::Level;
    match esc.level {
        Some(Level::Critical | Level::Error) => "red",
        Some(Level::Warn) => "orange",
        Some(Level::Notice | Level::Info) => "blue",
        _ => "grey",
    }
}

/// Bytes of `s` once in the JSON body (quotes and backslashes are escaped there).
fn json_len(s: &str) -> usize {
    s.len() + s.bytes().filter(|b| matches!(b, b'"' | b'\\')).count()
}

fn plain_lines(title: &str, lines: &[String], budget: usize) -> String {
    let (kept, cut) = render::fit(lines, budget, json_len);
    let mut text = format!("{title}\n{}", kept.join("\n"));
    if cut {
        text.push('\n');
        text.push_str(CUT);
    }
    text
}

/// The request body without `timestamp` and `sign`. With a template's body, that body is
/// one `lark_md` element (cut to fit) in place of the facts, sample and context, and the
/// footer has only the mentions.
pub fn payload(esc: &Escalation, parts: &Parts) -> Value {
    let mut footer = Vec::new();
    let mut elements = match &parts.body {
        Some(body) => vec![json!({"tag": "div", "text": {"tag": "lark_md",
            "content": render::fit_text(body, TEXT_BYTES, json_len)}})],
        None => {
            if let Some(link) = &parts.link {
                footer.push(format!("[Open in Grafana]({link})"));
            }
            built_in_elements(esc)
        }
    };
    for id in &parts.mention {
        footer.push(format!("<at id={id}></at>"));
    }
    if !footer.is_empty() {
        elements.push(json!({"tag": "div", "text": {"tag": "lark_md",
            "content": footer.join(" ")}}));
    }
    json!({
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": true},
            "header": {"title": {"tag": "plain_text", "content": render::headline(esc)},
                       "template": colour(esc)},
            "elements": elements,
        }
    })
}

/// The facts in `lark_md`, the sample and context as `plain_text`.
fn built_in_elements(esc: &Escalation) -> Vec<Value> {
    let facts: Vec<String> = render::facts(esc)
        .into_iter()
        .map(|(name, value)| format!("**{name}** {}", render::neutral_md(&value)))
        .collect();
    let mut elements = vec![
        json!({"tag": "div", "text": {"tag": "lark_md", "content": facts.join("\n")}}),
        json!({"tag": "hr"}),
    ];
    let context = render::context_lines(esc);
    let sample_budget = if context.is_empty() {
        TEXT_BYTES
    } else {
        TEXT_BYTES * 3 / 4
    };
    elements.push(json!({"tag": "div", "text": {"tag": "plain_text",
        "content": plain_lines("Sample", &render::sample_lines(esc), sample_budget)}}));
    if !context.is_empty() {
        elements.push(json!({"tag": "div", "text": {"tag": "plain_text",
            "content": plain_lines("Context", &context, TEXT_BYTES / 4)}}));
    }
    elements
}

/// The outcome of a Feishu answer body (HTTP 200).
pub fn judge(receiver: &str, body: &str) -> Outcome {
    judge_code(
        receiver,
        body,
        &CodeRules {
            provider: "Feishu",
            code: &["code", "StatusCode"],
            message: &["msg", "StatusMessage"],
            retry: &[(RATE_LIMITED, None)],
        },
    )
}

impl Sender for Feishu {
    fn send(&mut self, esc: &Escalation, _key: &str) -> Outcome {
        let mut body = payload(esc, &self.layout.parts(self.http.receiver(), esc));
        if let Some(secret) = &self.secret {
            let ts = unix_secs();
            body["timestamp"] = Value::from(ts.to_string());
            body["sign"] = Value::from(sign(ts, secret.expose()));
        }
        let body = serde_json::to_vec(&body).unwrap_or_default();
        self.http.post_coded(self.url.expose(), body, judge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_wire_test_vector() {
        assert_eq!(
            sign(1_700_000_000, "secret"),
            "fiWS2+gh28DOydAv7hzONH/mDn9+b1Y4Y5ivXWXy8vA="
        );
    }

    #[test]
    fn code_decides_success() {
        assert!(matches!(
            judge("c", r#"{"code":0,"msg":"success","data":{}}"#),
            Outcome::Accepted { .. }
        ));
        assert!(matches!(
            judge("c", r#"{"StatusCode":0,"StatusMessage":"success"}"#),
            Outcome::Accepted { .. }
        ));
        assert!(matches!(
            judge("c", r#"{"code":11232,"msg":"frequency limited"}"#),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            judge("c", r#"{"code":19021,"msg":"sign match fail"}"#),
            Outcome::Rejected { .. }
        ));
    }
}
