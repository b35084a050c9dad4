//! The `slack` receiver against a local server that checks Slack's incoming-webhook format:
//! Block Kit with a plain-text fallback, log content that can neither mention, link nor break
//! the markup, and what Slack's answers (ok, 429 + Retry-After, 400, 5xx, a hang) come to.

#[path = "common/chat_server.rs"]
mod chat_server;
mod common;
#[path = "common/web_delivery.rs"]
mod web_delivery;

use std::time::Duration;

use chat_server::{
    ChatServer, Provider, Script, TOKEN, escalation, hostile_lines, plain_escalation, secret,
};
use logward::escalation::Kind;
use logward::notify::post::Poster;
use logward::notify::slack::Slack;
use logward::notify::{Outcome, Sender};
use serde_json::Value;

const EXPLORE: &str = "https://grafana.example/explore?orgId=1&left={loki_query}";

fn slack(server: &ChatServer, mention: &[&str]) -> Slack {
    let url = secret(&server.url());
    Slack::new(
        "team-chat".into(),
        url,
        mention.iter().map(|m| m.to_string()).collect(),
        Some(EXPLORE.into()),
    )
}

/// Every mrkdwn text of a payload (the fallback `text` too).
fn mrkdwn_texts(body: &Value) -> Vec<String> {
    let mut out = vec![body["text"].as_str().unwrap().to_string()];
    for block in body["blocks"].as_array().unwrap() {
        if block["text"]["type"] == "mrkdwn" {
            out.push(block["text"]["text"].as_str().unwrap().into());
        }
        for f in block["fields"].as_array().into_iter().flatten() {
            out.push(f["text"].as_str().unwrap().into());
        }
        for e in block["elements"].as_array().into_iter().flatten() {
            out.push(e["text"].as_str().unwrap().into());
        }
    }
    out
}

#[test]
fn a_first_escalation_is_block_kit_with_a_fallback_sample_and_grafana_link() {
    let server = ChatServer::start(Provider::Slack);
    let mut s = slack(&server, &["U012AB3CD", "here"]);
    let out = s.send(&plain_escalation(), "key-1");
    assert_eq!(
        out,
        Outcome::Accepted {
            answer: "ok".into()
        }
    );
    let got = server.wait_accepted(1);
    let b = &got[0].body;
    assert_eq!(
        got[0].header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let blocks = b["blocks"].as_array().unwrap();
    let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["header", "section", "section", "section", "context"],
        "{b:#}"
    );
    assert_eq!(
        blocks[0]["text"]["text"],
        "🔴 ERROR · ERROR db timeout after 30s · New: ERROR db timeout after 30s"
    );
    assert_eq!(
        b["text"],
        "<@U012AB3CD> <!here> 🔴 ERROR · ERROR db timeout after 30s · New: ERROR db timeout after 30s"
    );
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(fields[0], "*Route*\n`errors`");
    assert_eq!(fields[1], "*Count*\n`3 · 2 suppressed`");
    assert_eq!(fields[2], "*First seen*\n`2026-11-22T10:00:00Z`");
    assert!(
        fields.iter().any(|f| f.starts_with("*Run*\n")),
        "{fields:?}"
    );
    assert_eq!(
        blocks[2]["text"]["text"],
        "*Sample*\n```ERROR db timeout after 30s\n    at com.example.Db.query(Db.java:42)```"
    );
    assert!(
        blocks[3]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("*Context*\n```")
    );
    let footer = blocks[4]["elements"][0]["text"].as_str().unwrap();
    assert!(
        footer.starts_with(
            "<https://grafana.example/explore?orgId=1&amp;left=%7Bjob%3D%22jenkins%22%7D+%7C%3D+%22ERROR+db%22|Open in Grafana>"
        ),
        "{footer}"
    );
    assert!(footer.ends_with("<@U012AB3CD> <!here>"), "{footer}");
}

#[test]
fn repeat_and_summary_read_differently() {
    let server = ChatServer::start(Provider::Slack);
    let mut s = slack(&server, &[]);
    let mut e = plain_escalation();
    e.kind = Kind::Repeat;
    e.suppressed = 40;
    assert!(matches!(s.send(&e, "k"), Outcome::Accepted { .. }));
    e.kind = Kind::Summary;
    e.count = 41;
    assert!(matches!(s.send(&e, "k"), Outcome::Accepted { .. }));
    let got = server.wait_accepted(2);
    let header = |i: usize| {
        got[i].body["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        header(0).contains("· Still firing (40 more): "),
        "{}",
        header(0)
    );
    assert!(
        header(1).contains("· Summary: 41 in the window: "),
        "{}",
        header(1)
    );
}

#[test]
fn hostile_log_lines_cannot_mention_link_or_break_the_markup() {
    let server = ChatServer::start(Provider::Slack);
    let mut s = slack(&server, &["U0CONFIG"]);
    let lines = hostile_lines();
    for line in &lines {
        let out = s.send(&escalation(line), "k");
        assert!(
            matches!(out, Outcome::Accepted { .. }),
            "{out:?} for {line:?}"
        );
    }
    let got = server.wait_accepted(lines.len());
    for r in &got {
        for text in mrkdwn_texts(&r.body) {
            // Every `<` is ours: the Grafana link or the configured mention.
            for (i, _) in text.match_indices('<') {
                let rest = &text[i..];
                assert!(
                    rest.starts_with("<https://grafana.example/explore?")
                        || rest.starts_with("<@U0CONFIG>"),
                    "a `<` from the log in {text:?}"
                );
            }
            assert_eq!(
                text.matches("```").count() % 2,
                0,
                "unbalanced fence in {text:?}"
            );
            for block in text.split("```").skip(1).step_by(2) {
                assert!(
                    !block.contains('`'),
                    "a backtick inside a code block: {block:?}"
                );
            }
            assert!(!text.contains('\u{1b}') && !text.contains('\0') && !text.contains('\u{202e}'));
        }
    }
    let long = got
        .iter()
        .find(|r| {
            r.body["blocks"][2]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("AAAAAAAAAA")
        })
        .expect("the 10 KB line");
    let sample = long.body["blocks"][2]["text"]["text"].as_str().unwrap();
    assert!(
        sample.chars().count() <= 3000 && sample.ends_with("```\n…cut"),
        "{sample}"
    );
}

#[test]
fn a_cut_sample_says_so() {
    let server = ChatServer::start(Provider::Slack);
    let mut s = slack(&server, &[]);
    let mut e = plain_escalation();
    e.sample.line = (0..200)
        .map(|i| format!("line {i} {}", "&".repeat(40)))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(matches!(s.send(&e, "k"), Outcome::Accepted { .. }));
    let got = server.wait_accepted(1);
    let sample = got[0].body["blocks"][2]["text"]["text"].as_str().unwrap();
    assert!(sample.ends_with("```\n…cut"), "{sample}");
    assert!(sample.chars().count() <= 3000);
}

#[test]
fn a_429_is_a_retry_after_what_slack_said() {
    let server = ChatServer::start(Provider::Slack);
    let mut s = slack(&server, &[]);
    server.then(Script::RateLimited);
    match s.send(&plain_escalation(), "k") {
        Outcome::Retry { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(3)));
            assert!(
                reason.contains("HTTP 429") && reason.contains("team-chat"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    server.then(Script::Http {
        status: 500,
        body: "rollup_error".into(),
        retry_after: None,
    });
    assert!(matches!(
        s.send(&plain_escalation(), "k"),
        Outcome::Retry { after: None, .. }
    ));
    assert!(matches!(
        s.send(&plain_escalation(), "k"),
        Outcome::Accepted { .. }
    ));
}

#[test]
fn a_400_is_rejected_with_slacks_message() {
    let server = ChatServer::start(Provider::Slack);
    let mut s = slack(&server, &[]);
    server.then(Script::Http {
        status: 400,
        body: "invalid_payload".into(),
        retry_after: None,
    });
    match s.send(&plain_escalation(), "k") {
        Outcome::Rejected { reason } => {
            assert_eq!(reason, "receiver `team-chat`: HTTP 400: invalid_payload")
        }
        other => panic!("{other:?}"),
    }
    // A wrong URL path: Slack's own 404 body.
    let mut wrong = Slack::new(
        "team-chat".into(),
        secret(&format!("http://{}/services/T0/B0/nope", server.addr)),
        vec![],
        None,
    );
    match wrong.send(&plain_escalation(), "k") {
        Outcome::Rejected { reason } => {
            assert!(reason.ends_with("HTTP 404: no_service"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_hanging_server_is_a_retry_within_the_timeout() {
    let server = ChatServer::start(Provider::Slack);
    let mut s = slack(&server, &[]).with_http(
        Poster::new("team-chat".into())
            .with_timeouts(Duration::from_secs(1), Duration::from_millis(300)),
    );
    server.then(Script::Slow(Duration::from_secs(2)));
    let started = std::time::Instant::now();
    match s.send(&plain_escalation(), "k") {
        Outcome::Retry { reason, .. } => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn the_url_never_shows_in_debug_or_errors() {
    let server = ChatServer::start(Provider::Slack);
    let url = secret(&server.url());
    assert_eq!(format!("{url:?}"), "***");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut s = Slack::new(
        "team-chat".into(),
        secret(&format!(
            "http://127.0.0.1:{closed}/services/T000/B000/{TOKEN}"
        )),
        vec![],
        None,
    );
    let Outcome::Retry { reason, .. } = s.send(&plain_escalation(), "k") else {
        panic!("a closed port is retried")
    };
    assert!(
        !reason.contains(TOKEN) && !reason.contains("/services/"),
        "{reason}"
    );
    server.then(Script::Http {
        status: 403,
        body: "invalid_token".into(),
        retry_after: None,
    });
    let Outcome::Rejected { reason } = slack(&server, &[]).send(&plain_escalation(), "k") else {
        panic!()
    };
    assert!(!reason.contains(TOKEN), "{reason}");
}

// Through `logward run` (scenarios in tests/common/web_delivery.rs).

#[test]
fn run_retries_a_429_no_sooner_than_retry_after_and_delivers_once() {
    web_delivery::retried_after_a_429_no_sooner_than_retry_after(Provider::Slack);
}

#[test]
fn run_does_not_retry_invalid_payload() {
    web_delivery::its_permanent_error_is_not_retried(Provider::Slack);
}

#[test]
fn run_delivers_once_after_kill_9_during_a_hung_attempt() {
    web_delivery::in_flight_at_kill_9_is_delivered_once_after_the_restart(Provider::Slack);
}

#[test]
fn run_shows_the_url_token_nowhere() {
    web_delivery::secrets_show_nowhere(Provider::Slack);
}
