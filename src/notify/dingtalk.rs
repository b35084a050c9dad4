//! `dingtalk`: a DingTalk custom robot (WIRE.md §3). A `markdown` message; with `secret`, the
//! query gets `timestamp` (milliseconds) and `sign` = Base64(HMAC-SHA256(key = secret,
//! message = "timestamp\nsecret")). The body's `errcode` decides: 0 is delivered, 130101
//! (sending too fast) and -1 (busy) are retried, anything else is not.
//!
//! Log content goes through [`render::neutral_md`] (no links, images, headings, `@`), also in
//! the values a `template` prints ([`super::template`]), and the `at` object is filled only
//! from the `mention` lists of the receiver and the route (`isAtAll` is false unless one holds
//! `all`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::post::{CodeRules, Poster, judge_code};
use super::render::{self, CUT, Layout, Parts};
use super::template::Template;
use super::{Outcome, Sender};
use crate::config::Secret;
use crate::escalation::Escalation;

/// No documented robot limit; the legacy chat limit is 5,000 characters of content.
const TEXT_CHARS: usize = 4_500;
/// `errcode` of "send too fast": the robot is blocked for ten minutes.
const RATE_LIMITED: i64 = 130101;
const BLOCKED_FOR: Duration = Duration::from_secs(600);

pub struct DingTalk {
    url: Secret,
    secret: Option<Secret>,
    layout: Layout,
    http: Poster,
}

impl DingTalk {
    pub fn new(
        name: Arc<str>,
        url: Secret,
        secret: Option<Secret>,
        mention: Vec<String>,
        explore_url: Option<String>,
    ) -> DingTalk {
        DingTalk {
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

    pub fn with_http(mut self, http: Poster) -> DingTalk {
        self.http = http;
        self
    }

    /// A `template` whose output replaces everything under the heading but the mentions.
    pub fn with_template(mut self, template: Option<Template>) -> DingTalk {
        self.layout.template = template;
        self
    }
}

/// Base64(HMAC-SHA256(key = secret, message = "timestamp\nsecret")), not yet URL-encoded.
pub fn sign(timestamp_ms: u64, secret: &str) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map(|mut m| {
        m.update(format!("{timestamp_ms}\n{secret}").as_bytes());
        m.finalize()
    });
    mac.map(|m| base64::engine::general_purpose::STANDARD.encode(m.into_bytes()))
        .unwrap_or_default()
}

/// The request body: the heading, then a template's body (cut to fit) or the built-in one,
/// then the mentions.
pub fn payload(esc: &Escalation, parts: &Parts) -> Value {
    let mut text = format!(
        "#### {} {} · {} · {}\n\n",
        render::level_marker(esc.level),
        render::level_word(esc.level),
        render::neutral_md(&render::service(esc)),
        render::kind_phrase(esc),
    );
    match &parts.body {
        Some(body) => {
            let budget = TEXT_CHARS.saturating_sub(text.chars().count() + 300);
            text.push_str(&render::fit_text(body, budget, |s| s.chars().count()));
            text.push('\n');
        }
        None => built_in_body(&mut text, esc, parts.link.as_deref()),
    }
    let mention = &parts.mention;
    let all = mention.iter().any(|m| m == "all");
    let people: Vec<&String> = mention.iter().filter(|m| *m != "all").collect();
    let mobiles: Vec<&String> = people
        .iter()
        .copied()
        .filter(|m| m.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let users: Vec<&String> = people
        .iter()
        .copied()
        .filter(|m| !m.chars().all(|c| c.is_ascii_digit()))
        .collect();
    if !people.is_empty() {
        text.push('\n');
        for p in &people {
            text.push_str(&format!("@{p} "));
        }
    }
    let title = render::cut_chars(
        &format!(
            "{} {}: {}",
            render::level_word(esc.level),
            render::neutral_md(&render::service(esc)),
            render::neutral_md(&render::message(esc))
        ),
        100,
    );
    json!({
        "msgtype": "markdown",
        "markdown": {"title": title, "text": text},
        "at": {"atMobiles": mobiles, "atUserIds": users, "isAtAll": all},
    })
}

/// The message in bold, the facts as a list, the sample and context as quotes, the link.
fn built_in_body(text: &mut String, esc: &Escalation, link: Option<&str>) {
    text.push_str(&format!(
        "**{}**\n\n",
        render::neutral_md(&render::message(esc))
    ));
    for (name, value) in render::facts(esc) {
        text.push_str(&format!("- {name}: {}\n", render::neutral_md(&value)));
    }
    text.push('\n');
    let context: Vec<String> = render::context_lines(esc)
        .iter()
        .map(|l| render::neutral_md(l))
        .collect();
    let sample: Vec<String> = render::sample_lines(esc)
        .iter()
        .map(|l| render::neutral_md(l))
        .collect();
    let budget = TEXT_CHARS.saturating_sub(text.chars().count() + 300);
    let ctx_budget = if context.is_empty() { 0 } else { budget / 4 };
    let (kept, cut) = render::fit(&sample, budget - ctx_budget, |s| s.chars().count() + 4);
    text.push_str("Sample:\n\n");
    for l in &kept {
        text.push_str(&format!("> {l}  \n"));
    }
    if cut {
        text.push_str(&format!("> {CUT}  \n"));
    }
    if !context.is_empty() {
        let (kept, cut) = render::fit(&context, ctx_budget, |s| s.chars().count() + 4);
        text.push_str("\nContext:\n\n");
        for l in &kept {
            text.push_str(&format!("> {l}  \n"));
        }
        if cut {
            text.push_str(&format!("> {CUT}  \n"));
        }
    }
    if let Some(link) = link {
        text.push_str(&format!("\n[Open in Grafana]({link})\n"));
    }
}

/// The outcome of a DingTalk answer body (HTTP 200).
pub fn judge(receiver: &str, body: &str) -> Outcome {
    judge_code(
        receiver,
        body,
        &CodeRules {
            provider: "DingTalk",
            code: &["errcode"],
            message: &["errmsg"],
            retry: &[(RATE_LIMITED, Some(BLOCKED_FOR)), (-1, None)],
        },
    )
}

impl Sender for DingTalk {
    fn send(&mut self, esc: &Escalation, _key: &str) -> Outcome {
        let body = payload(esc, &self.layout.parts(self.http.receiver(), esc));
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut url = match url::Url::parse(self.url.expose()) {
            Ok(u) => u,
            Err(_) => {
                return Outcome::Rejected {
                    reason: format!("receiver `{}`: `url` is not a URL", self.http.receiver()),
                };
            }
        };
        if let Some(secret) = &self.secret {
            let ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            url.query_pairs_mut()
                .append_pair("timestamp", &ms.to_string())
                .append_pair("sign", &sign(ms, secret.expose()));
        }
        self.http.post_coded(url.as_str(), body, judge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_wire_test_vector() {
        assert_eq!(
            sign(1_700_000_000_000, "secret"),
            "OuzzJR5+xZ4/EYwqtNt6sMYZQMTa/HEGvc9miJe7XzY="
        );
    }

    #[test]
    fn errcode_decides_success() {
        assert!(matches!(
            judge("c", r#"{"errcode":0,"errmsg":"ok"}"#),
            Outcome::Accepted { .. }
        ));
        assert!(matches!(
            judge("c", r#"{"errcode":130101,"errmsg":"send too fast"}"#),
            Outcome::Retry { after: Some(_), .. }
        ));
        assert!(matches!(
            judge("c", r#"{"errcode":310000,"errmsg":"sign not match"}"#),
            Outcome::Rejected { .. }
        ));
    }
}
