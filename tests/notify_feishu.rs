//! The `feishu` receiver against a local server that checks the Feishu/Lark custom bot's
//! format: an `interactive` card, `timestamp` + `sign` verified the way Feishu does, success
//! by the body's `code`, and log content that cannot `<at>`, link or style anything.

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
use logward::notify::feishu::Feishu;
use logward::notify::{Outcome, Sender};
use serde_json::Value;

const SECRET: &str = "fs-SIGNING-secret-77";
const EXPLORE: &str = "https://grafana.example/explore?left={loki_query}";

fn signed() -> Provider {
    Provider::Feishu {
        secret: Some(SECRET.into()),
    }
}

fn signed_server() -> ChatServer {
    ChatServer::start(signed())
}

fn feishu(server: &ChatServer, signing: Option<&str>, mention: &[&str]) -> Feishu {
    Feishu::new(
        "lark".into(),
        secret(&server.url()),
        signing.map(secret),
        mention.iter().map(|m| m.to_string()).collect(),
        Some(EXPLORE.into()),
    )
}

fn lark_md(body: &Value) -> Vec<String> {
    body["card"]["elements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["text"]["tag"] == "lark_md")
        .map(|e| e["text"]["content"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_signed_card_has_a_coloured_title_facts_sample_and_link() {
    let server = signed_server();
    let mut f = feishu(&server, Some(SECRET), &["ou_abc"]);
    let out = f.send(&plain_escalation(), "k");
    assert_eq!(
        out,
        Outcome::Accepted {
            answer: r#"{"code":0,"data":{},"msg":"success"}"#.into()
        }
    );
    let got = server.wait_accepted(1);
    let b = &got[0].body;
    assert_eq!(
        got[0].header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(b["msg_type"], "interactive");
    assert!(b["timestamp"].as_str().unwrap().parse::<u64>().is_ok());
    let card = &b["card"];
    assert_eq!(card["header"]["template"], "red");
    assert_eq!(
        card["header"]["title"]["content"],
        "🔴 ERROR · ERROR db timeout after 30s · New: ERROR db timeout after 30s"
    );
    let e = card["elements"].as_array().unwrap();
    let tags: Vec<String> = e
        .iter()
        .map(|x| {
            format!(
                "{}/{}",
                x["tag"].as_str().unwrap(),
                x["text"]["tag"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        tags,
        [
            "div/lark_md",
            "hr/",
            "div/plain_text",
            "div/plain_text",
            "div/lark_md"
        ]
    );
    let facts = e[0]["text"]["content"].as_str().unwrap();
    assert!(
        facts.starts_with("**Route** errors\n**Count** 3 · 2 suppressed\n"),
        "{facts}"
    );
    assert_eq!(
        e[2]["text"]["content"],
        "Sample\nERROR db timeout after 30s\n    at com.example.Db.query(Db.java:42)"
    );
    let footer = e[4]["text"]["content"].as_str().unwrap();
    assert!(
        footer.starts_with("[Open in Grafana](https://grafana.example/explore?left=%7Bjob"),
        "{footer}"
    );
    assert!(footer.ends_with(" <at id=ou_abc></at>"), "{footer}");
}

#[test]
fn a_wrong_signature_gets_feishus_19021() {
    let server = signed_server();
    let mut f = feishu(&server, Some("not-the-secret"), &[]);
    match f.send(&plain_escalation(), "k") {
        Outcome::Rejected { reason } => {
            assert!(
                reason.starts_with("receiver `lark`: Feishu code 19021: sign match fail"),
                "{reason}"
            );
            assert!(
                !reason.contains("not-the-secret") && !reason.contains(TOKEN),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(server.accepted().is_empty());
    // Unsigned to a bot that wants a signature: refused the same way.
    let mut f = feishu(&server, None, &[]);
    assert!(matches!(
        f.send(&plain_escalation(), "k"),
        Outcome::Rejected { .. }
    ));
}

#[test]
fn dingtalks_signing_method_is_refused_by_feishu() {
    // HMAC(key = secret, message = "timestamp\nsecret"), what some client libraries do.
    let server = signed_server();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut body = logward::notify::feishu::payload(&plain_escalation(), &Default::default());
    body["timestamp"] = Value::from(ts.to_string());
    body["sign"] = Value::from(logward::notify::dingtalk::sign(ts, SECRET));
    let answer: Value = reqwest::blocking::Client::new()
        .post(server.url())
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["code"], 19021, "{answer}");
    body["sign"] = Value::from(logward::notify::feishu::sign(ts, SECRET));
    let answer: Value = reqwest::blocking::Client::new()
        .post(server.url())
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["code"], 0, "{answer}");
}

#[test]
fn hostile_log_lines_cannot_mention_link_or_style() {
    let server = signed_server();
    let mut f = feishu(&server, Some(SECRET), &["ou_config"]);
    let lines = hostile_lines();
    for line in &lines {
        let out = f.send(&escalation(line), "k");
        assert!(
            matches!(out, Outcome::Accepted { .. }),
            "{out:?} for {line:?}"
        );
    }
    for r in server.wait_accepted(lines.len()) {
        let md = lark_md(&r.body);
        for text in &md {
            let ours = text
                .replace("<at id=ou_config></at>", "")
                .split("[Open in Grafana](https://grafana.example/explore?left=")
                .next()
                .unwrap()
                .to_string();
            for bad in [
                "<",
                "](",
                "![",
                "@all",
                "@everyone",
                "**ERROR",
                "://",
                "`",
                "~~",
            ] {
                assert!(!ours.contains(bad), "`{bad}` from the log in {text:?}");
            }
            assert!(!text.contains('\u{1b}') && !text.contains('\0'));
        }
        // The facts element's markup is ours: bold names only.
        assert_eq!(
            md[0].matches("**").count(),
            2 * md[0].lines().count(),
            "{}",
            md[0]
        );
        assert!(r.raw.len() <= 20 * 1024);
    }
}

#[test]
fn the_rate_limit_code_is_a_retry_and_429_honours_retry_after() {
    let server = signed_server();
    let mut f = feishu(&server, Some(SECRET), &[]);
    server.then(Script::RateLimited);
    match f.send(&plain_escalation(), "k") {
        Outcome::Retry { reason, .. } => assert!(reason.contains("11232"), "{reason}"),
        other => panic!("{other:?}"),
    }
    server.then(Script::Http {
        status: 429,
        body: "{}".into(),
        retry_after: Some("12".into()),
    });
    assert!(matches!(
        f.send(&plain_escalation(), "k"),
        Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(12)
    ));
    server.then(Script::Http {
        status: 502,
        body: "".into(),
        retry_after: None,
    });
    assert!(matches!(
        f.send(&plain_escalation(), "k"),
        Outcome::Retry { .. }
    ));
    assert!(matches!(
        f.send(&plain_escalation(), "k"),
        Outcome::Accepted { .. }
    ));
}

#[test]
fn a_400_and_a_non_zero_code_are_rejected() {
    let server = signed_server();
    let mut f = feishu(&server, Some(SECRET), &[]);
    server.then(Script::Http {
        status: 400,
        body: r#"{"code":9499,"msg":"Bad Request"}"#.into(),
        retry_after: None,
    });
    assert!(matches!(
        f.send(&plain_escalation(), "k"),
        Outcome::Rejected { .. }
    ));
    server.then(Script::Http {
        status: 200,
        body: r#"{"code":19024,"msg":"Key Words Not Found"}"#.into(),
        retry_after: None,
    });
    assert_eq!(
        f.send(&plain_escalation(), "k"),
        Outcome::Rejected {
            reason: "receiver `lark`: Feishu code 19024: Key Words Not Found".into()
        }
    );
}

#[test]
fn secrets_never_show_in_debug_or_errors() {
    let s = secret(SECRET);
    assert_eq!(format!("{s:?}"), "***");
    let mut f = Feishu::new(
        "lark".into(),
        secret(&format!(
            "http://127.0.0.1:{}/open-apis/bot/v2/hook/{TOKEN}",
            closed_port()
        )),
        Some(secret(SECRET)),
        vec![],
        None,
    );
    let Outcome::Retry { reason, .. } = f.send(&plain_escalation(), "k") else {
        panic!("a closed port is retried")
    };
    assert!(
        !reason.contains(TOKEN) && !reason.contains(SECRET) && !reason.contains("/hook/"),
        "{reason}"
    );
}

// Through `logward run` (scenarios in tests/common/web_delivery.rs).

#[test]
fn run_retries_code_11232_and_delivers_once() {
    web_delivery::its_rate_limit_code_is_retried(signed());
}

#[test]
fn run_retries_a_429_no_sooner_than_retry_after_and_delivers_once() {
    web_delivery::retried_after_a_429_no_sooner_than_retry_after(signed());
}

#[test]
fn run_does_not_retry_key_words_not_found() {
    web_delivery::its_permanent_error_is_not_retried(signed());
}

#[test]
fn run_delivers_once_after_kill_9_during_a_hung_attempt() {
    web_delivery::in_flight_at_kill_9_is_delivered_once_after_the_restart(signed());
}

#[test]
fn run_shows_the_url_token_and_signing_secret_nowhere() {
    web_delivery::secrets_show_nowhere(signed());
}
