//! The `dingtalk` receiver against a local server that checks the DingTalk custom robot's
//! format: `markdown` with an `at` object filled only from the config, `timestamp` + `sign`
//! query parameters verified the way DingTalk does, success by `errcode`, and log content that
//! cannot mention, link, add images or headings.

#[path = "common/chat_server.rs"]
mod chat_server;
mod common;
#[path = "common/web_delivery.rs"]
mod web_delivery;

use std::time::Duration;

use chat_server::{
    ChatServer, Provider, Script, TOKEN, closed_port, escalation, hostile_lines, plain_escalation,
    secret,
};
use logward::notify::dingtalk::DingTalk;
use logward::notify::{Outcome, Sender};
use serde_json::json;

const SECRET: &str = "SECdingtalk0123456789";
const EXPLORE: &str = "https://grafana.example/explore?left={loki_query}";

fn signed() -> Provider {
    Provider::DingTalk {
        secret: Some(SECRET.into()),
    }
}

fn signed_server() -> ChatServer {
    ChatServer::start(signed())
}

fn dingtalk(server: &ChatServer, signing: Option<&str>, mention: &[&str]) -> DingTalk {
    DingTalk::new(
        "ding".into(),
        secret(&server.url()),
        signing.map(secret),
        mention.iter().map(|m| m.to_string()).collect(),
        Some(EXPLORE.into()),
    )
}

#[test]
fn a_signed_markdown_message_with_facts_sample_link_and_configured_mentions() {
    let server = signed_server();
    let mut d = dingtalk(&server, Some(SECRET), &["manager01", "13800001111"]);
    let out = d.send(&plain_escalation(), "k");
    assert!(matches!(out, Outcome::Accepted { .. }), "{out:?}");
    let got = server.wait_accepted(1);
    let b = &got[0].body;
    assert_eq!(
        got[0].header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(got[0].query.contains("&timestamp=") && got[0].query.contains("&sign="));
    assert!(
        !got[0].query.contains("%25"),
        "the sign is encoded once: {}",
        got[0].query
    );
    assert_eq!(b["msgtype"], "markdown");
    assert_eq!(
        b["at"],
        json!({"atMobiles": ["13800001111"], "atUserIds": ["manager01"], "isAtAll": false})
    );
    assert_eq!(
        b["markdown"]["title"],
        "ERROR ERROR db timeout after 30s: ERROR db timeout after 30s"
    );
    let text = b["markdown"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("#### 🔴 ERROR · ERROR db timeout after 30s · New\n\n"),
        "{text}"
    );
    assert!(
        text.contains("- Route: errors\n- Count: 3 · 2 suppressed\n"),
        "{text}"
    );
    assert!(
        text.contains("Sample:\n\n> ERROR db timeout after 30s  \n>     at com.example.Db.query（Db.java:42）  \n"),
        "{text}"
    );
    assert!(
        text.contains("\n[Open in Grafana](https://grafana.example/explore?left=%7Bjob"),
        "{text}"
    );
    assert!(text.ends_with("@manager01 @13800001111 "), "{text}");
}

#[test]
fn a_wrong_signature_gets_dingtalks_310000() {
    let server = signed_server();
    let mut d = dingtalk(&server, Some("SECwrong"), &[]);
    match d.send(&plain_escalation(), "k") {
        Outcome::Rejected { reason } => {
            assert!(
                reason.starts_with("receiver `ding`: DingTalk errcode 310000: sign not match"),
                "{reason}"
            );
            assert!(!reason.contains("SECwrong") && !reason.contains(TOKEN));
        }
        other => panic!("{other:?}"),
    }
    assert!(server.accepted().is_empty());
}

#[test]
fn hostile_log_lines_cannot_mention_link_or_add_markup() {
    let server = signed_server();
    let mut d = dingtalk(&server, Some(SECRET), &[]);
    let lines = hostile_lines();
    for line in &lines {
        let out = d.send(&escalation(line), "k");
        assert!(
            matches!(out, Outcome::Accepted { .. }),
            "{out:?} for {line:?}"
        );
    }
    for r in server.wait_accepted(lines.len()) {
        assert_eq!(
            r.body["at"],
            json!({"atMobiles": [], "atUserIds": [], "isAtAll": false})
        );
        let text = r.body["markdown"]["text"].as_str().unwrap();
        let ours = text
            .split("\n[Open in Grafana](https://grafana.example/")
            .next()
            .unwrap();
        for bad in [
            "<", ">>", "](", "![", "@", "://", "`", "\n#", "\n> #", "\n> >", "\n> -", "|",
        ] {
            assert!(!ours.contains(bad), "`{bad}` from the log in {text:?}");
        }
        assert!(text.matches("####").count() == 1 && text.starts_with("#### "));
        assert_eq!(
            text.matches("**").count(),
            2,
            "only the message is bold: {text}"
        );
        let title = r.body["markdown"]["title"].as_str().unwrap();
        assert!(
            !title.contains('<') && !title.contains('@') && !title.contains("]("),
            "{title}"
        );
        assert!(!text.contains('\u{1b}') && !text.contains('\0') && !text.contains('\u{202e}'));
        assert!(text.chars().count() <= 5000);
    }
}

#[test]
fn the_rate_limit_code_is_a_retry_after_the_block_and_429_honours_retry_after() {
    let server = signed_server();
    let mut d = dingtalk(&server, Some(SECRET), &[]);
    server.then(Script::RateLimited);
    match d.send(&plain_escalation(), "k") {
        Outcome::Retry { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(600)));
            assert!(reason.contains("130101"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    server.then(Script::Http {
        status: 429,
        body: "".into(),
        retry_after: Some("5".into()),
    });
    assert!(matches!(
        d.send(&plain_escalation(), "k"),
        Outcome::Retry { after: Some(a), .. } if a == Duration::from_secs(5)
    ));
    assert!(matches!(
        d.send(&plain_escalation(), "k"),
        Outcome::Accepted { .. }
    ));
}

#[test]
fn a_400_and_keyword_errors_are_rejected() {
    let server = signed_server();
    let mut d = dingtalk(&server, Some(SECRET), &[]);
    server.then(Script::Http {
        status: 400,
        body: "bad".into(),
        retry_after: None,
    });
    assert!(matches!(
        d.send(&plain_escalation(), "k"),
        Outcome::Rejected { .. }
    ));
    server.then(Script::Http {
        status: 200,
        body: r#"{"errcode":310000,"errmsg":"keywords not in content"}"#.into(),
        retry_after: None,
    });
    assert_eq!(
        d.send(&plain_escalation(), "k"),
        Outcome::Rejected {
            reason: "receiver `ding`: DingTalk errcode 310000: keywords not in content".into()
        }
    );
}

#[test]
fn secrets_never_show_in_debug_or_errors() {
    assert_eq!(format!("{:?}", secret(SECRET)), "***");
    let mut d = DingTalk::new(
        "ding".into(),
        secret(&format!(
            "http://127.0.0.1:{}/robot/send?access_token={TOKEN}",
            closed_port()
        )),
        Some(secret(SECRET)),
        vec![],
        None,
    );
    let Outcome::Retry { reason, .. } = d.send(&plain_escalation(), "k") else {
        panic!("a closed port is retried")
    };
    assert!(
        !reason.contains(TOKEN) && !reason.contains(SECRET) && !reason.contains("sign="),
        "{reason}"
    );
}

// Through `logward run` (scenarios in tests/common/web_delivery.rs).

#[test]
fn run_holds_an_escalation_refused_with_130101_for_the_ten_minute_block() {
    web_delivery::its_rate_limit_code_holds_the_escalation_for_the_block(signed(), "600s");
}

#[test]
fn run_retries_a_429_no_sooner_than_retry_after_and_delivers_once() {
    web_delivery::retried_after_a_429_no_sooner_than_retry_after(signed());
}

#[test]
fn run_does_not_retry_keywords_not_in_content() {
    web_delivery::its_permanent_error_is_not_retried(signed());
}

#[test]
fn run_delivers_once_after_kill_9_during_a_hung_attempt() {
    web_delivery::in_flight_at_kill_9_is_delivered_once_after_the_restart(signed());
}

#[test]
fn run_shows_the_access_token_and_signing_secret_nowhere() {
    web_delivery::secrets_show_nowhere(signed());
}
