//! `logward notify test RECEIVER -c FILE` against the web providers' wire-checking servers:
//! what it prints and how it exits when the provider takes the sample, refuses it for good, or
//! asks to try later; and the error for a receiver that is not configured.

#[path = "common/chat_server.rs"]
mod chat_server;
mod common;

use chat_server::{ChatServer, Provider, Script, TOKEN, permanent_error};
use common::delivery::{Delivery, assert_no_secret};

const SECRET: &str = "notify-test-SECRET-5e";

/// The providers, each with the answer `notify test` prints when it takes the sample.
fn providers() -> Vec<(Provider, &'static str)> {
    let secret = Some(SECRET.to_string());
    vec![
        (Provider::Slack, "ok"),
        (
            Provider::Feishu {
                secret: secret.clone(),
            },
            r#"{"code":0,"data":{},"msg":"success"}"#,
        ),
        (
            Provider::DingTalk {
                secret: secret.clone(),
            },
            r#"{"errcode":0,"errmsg":"ok"}"#,
        ),
        (Provider::WeCom, r#"{"errcode":0,"errmsg":"ok"}"#),
        (Provider::Webhook { secret }, "HTTP 204"),
    ]
}

#[test]
fn notify_test_command_reports_answer() {
    let servers: Vec<(ChatServer, &str)> = providers()
        .into_iter()
        .map(|(p, answer)| (ChatServer::start(p), answer))
        .collect();
    let urls: Vec<(String, String)> = servers
        .iter()
        .map(|(s, _)| {
            let kind = s.provider().receiver_type();
            (format!("{}_URL", kind.to_uppercase()), s.url())
        })
        .collect();
    let tables: Vec<(&str, String)> = servers
        .iter()
        .map(|(s, _)| {
            let kind = s.provider().receiver_type();
            let mut t = format!(
                "type = \"{kind}\"\nurl = \"${{{}_URL}}\"\n",
                kind.to_uppercase()
            );
            if s.provider().secret().is_some() {
                t.push_str("secret = \"${SIGNING_SECRET}\"\n");
            }
            (kind, t)
        })
        .collect();
    let mut vars: Vec<(&str, &str)> = urls.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.push(("SIGNING_SECRET", SECRET));
    let receivers: Vec<(&str, &str)> = tables.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let d = Delivery::new(&receivers, &vars);
    let mut outputs = Vec::new();

    for (server, answer) in &servers {
        let name = server.provider().receiver_type();
        let taken = d.run(&["notify", "test", name]);
        assert_eq!(taken.status.code(), Some(0), "{}", taken.all_output());
        assert_eq!(taken.stdout, format!("accepted: {answer}\n"), "{name}");
        let got = server.wait_accepted(1);
        assert_eq!(got.len(), 1, "{name}: one request");

        server.then(Script::Permanent);
        let refused = d.run(&["notify", "test", name]);
        assert_eq!(refused.status.code(), Some(1), "{}", refused.all_output());
        let said = permanent_error(server.provider());
        assert!(
            refused.stderr.starts_with(&format!(
                "error: receiver `{name}` rejected it: receiver `{name}`: "
            )) && refused.stderr.contains(said),
            "{name}: {}",
            refused.stderr
        );

        server.then(Script::Http {
            status: 429,
            body: "rate_limited".into(),
            retry_after: Some("1".into()),
        });
        let later = d.run(&["notify", "test", name]);
        assert_eq!(later.status.code(), Some(1), "{}", later.all_output());
        assert!(
            later.stderr.starts_with(&format!(
                "error: receiver `{name}` failed, would be retried (retry after 1s): "
            )) && later.stderr.contains("HTTP 429: rate_limited"),
            "{name}: {}",
            later.stderr
        );
        assert_eq!(server.received().len(), 3, "{name}: no retry");
        for out in [taken, refused, later] {
            outputs.push((format!("`logward notify test {name}`"), out.all_output()));
        }
    }

    let unknown = d.run(&["notify", "test", "pager"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", unknown.all_output());
    assert!(
        unknown
            .stderr
            .contains("no receiver `pager`; configured: dingtalk, feishu, slack, webhook, wecom"),
        "{}",
        unknown.stderr
    );
    assert_no_secret(&[TOKEN, SECRET], &outputs);
}
