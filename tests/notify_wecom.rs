//! The `wecom` receiver against a local server that checks the WeCom group robot's format:
//! `markdown` within 4,096 bytes, success by `errcode`, and log content that cannot `<@user>`,
//! colour, link or break the markup. Mentions come only from the config.

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
use logward::notify::wecom::WeCom;
use logward::notify::{Outcome, Sender};

const EXPLORE: &str = "https://grafana.example/explore?left={loki_query}";

fn wecom(server: &ChatServer, mention: &[&str]) -> WeCom {
    WeCom::new(
        "wx".into(),
        secret(&server.url()),
        mention.iter().map(|m| m.to_string()).collect(),
        Some(EXPLORE.into()),
    )
}

#[test]
fn a_markdown_message_with_colour_facts_sample_link_and_configured_mention() {
    let server = ChatServer::start(Provider::WeCom);
    let mut w = wecom(&server, &["wangqing"]);
    assert!(matches!(
        w.send(&plain_escalation(), "k"),
        Outcome::Accepted { .. }
    ));
    let got = server.wait_accepted(1);
    assert_eq!(
        got[0].header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let content = got[0].body["markdown"]["content"].as_str().unwrap();
    assert!(
        content.starts_with(
            "### 🔴 <font color=\"warning\">ERROR</font> · ERROR db timeout after 30s · New\n**ERROR db timeout after 30s**\n> Route: errors\n> Count: 3 · 2 suppressed\n"
        ),
        "{content}"
    );
    assert!(
        content.contains(
            "Sample:\n`ERROR db timeout after 30s`\n`    at com.example.Db.query（Db.java:42）`\n"
        ),
        "{content}"
    );
    assert!(
        content.contains("[Open in Grafana](https://grafana.example/explore?left=%7Bjob"),
        "{content}"
    );
    assert!(content.ends_with("<@wangqing>"), "{content}");
}

#[test]
fn hostile_log_lines_cannot_mention_colour_or_link_and_stay_within_4096_bytes() {
    let server = ChatServer::start(Provider::WeCom);
    let mut w = wecom(&server, &[]);
    let lines = hostile_lines();
    for line in &lines {
        let out = w.send(&escalation(line), "k");
        assert!(
            matches!(out, Outcome::Accepted { .. }),
            "{out:?} for {line:?}"
        );
    }
    let mut cut = 0;
    for r in server.wait_accepted(lines.len()) {
        let content = r.body["markdown"]["content"].as_str().unwrap();
        assert!(content.len() <= 4096);
        assert_eq!(content.matches("<font").count(), 1, "{content}");
        assert_eq!(
            content.matches("**").count(),
            2,
            "only the message is bold: {content}"
        );
        let ours = content
            .replacen("<font color=\"warning\">ERROR</font>", "", 1)
            .split("[Open in Grafana](https://grafana.example/")
            .next()
            .unwrap()
            .to_string();
        for bad in ["<", "](", "![", "@", "://", "\n#", "\n>>"] {
            assert!(!ours.contains(bad), "`{bad}` from the log in {content:?}");
        }
        for line in content.lines().filter(|l| l.starts_with('`')) {
            assert!(
                line.ends_with('`') && line.matches('`').count() == 2,
                "{line:?}"
            );
        }
        assert!(
            !content.contains('\u{1b}') && !content.contains('\0') && !content.contains('\u{202e}')
        );
        cut += usize::from(content.contains("…cut"));
    }
    assert!(cut >= 2, "the long lines are cut visibly");
}

#[test]
fn errcode_45009_is_a_retry_after_the_window_and_429_honours_retry_after() {
    let server = ChatServer::start(Provider::WeCom);
    let mut w = wecom(&server, &[]);
    server.then(Script::RateLimited);
    assert_eq!(
        w.send(&plain_escalation(), "k"),
        Outcome::Retry {
            after: Some(Duration::from_secs(60)),
            reason: "receiver `wx`: WeCom errcode 45009: api freq out of limit".into()
        }
    );
    server.then(Script::Http {
        status: 429,
        body: "".into(),
        retry_after: Some("9".into()),
    });
    assert!(matches!(
        w.send(&plain_escalation(), "k"),
        Outcome::Retry { after: Some(a), .. } if a == Duration::from_secs(9)
    ));
    server.then(Script::Http {
        status: 503,
        body: "".into(),
        retry_after: None,
    });
    assert!(matches!(
        w.send(&plain_escalation(), "k"),
        Outcome::Retry { .. }
    ));
}

#[test]
fn a_400_and_a_bad_key_are_rejected() {
    let server = ChatServer::start(Provider::WeCom);
    server.then(Script::Http {
        status: 400,
        body: "".into(),
        retry_after: None,
    });
    assert!(matches!(
        wecom(&server, &[]).send(&plain_escalation(), "k"),
        Outcome::Rejected { .. }
    ));
    let mut wrong = WeCom::new(
        "wx".into(),
        secret(&format!(
            "http://{}/cgi-bin/webhook/send?key=nope",
            server.addr
        )),
        vec![],
        None,
    );
    match wrong.send(&plain_escalation(), "k") {
        Outcome::Rejected { reason } => assert!(reason.contains("errcode 93000"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_key_never_shows_in_debug_or_errors() {
    let url = secret(&format!(
        "http://127.0.0.1:{}/cgi-bin/webhook/send?key={TOKEN}",
        closed_port()
    ));
    assert_eq!(format!("{url:?}"), "***");
    let Outcome::Retry { reason, .. } =
        WeCom::new("wx".into(), url, vec![], None).send(&plain_escalation(), "k")
    else {
        panic!("a closed port is retried")
    };
    assert!(
        !reason.contains(TOKEN) && !reason.contains("key="),
        "{reason}"
    );
}

// Through `logward run` (scenarios in tests/common/web_delivery.rs).

#[test]
fn run_holds_an_escalation_refused_with_45009_for_the_minute() {
    web_delivery::its_rate_limit_code_holds_the_escalation_for_the_block(Provider::WeCom, "60s");
}

#[test]
fn run_retries_a_429_no_sooner_than_retry_after_and_delivers_once() {
    web_delivery::retried_after_a_429_no_sooner_than_retry_after(Provider::WeCom);
}

#[test]
fn run_does_not_retry_an_invalid_webhook_url() {
    web_delivery::its_permanent_error_is_not_retried(Provider::WeCom);
}

#[test]
fn run_delivers_once_after_kill_9_during_a_hung_attempt() {
    web_delivery::in_flight_at_kill_9_is_delivered_once_after_the_restart(Provider::WeCom);
}

#[test]
fn run_shows_the_key_nowhere() {
    web_delivery::secrets_show_nowhere(Provider::WeCom);
}
