//! The `webhook` receiver against a local server that verifies the signature the way a
//! receiver should (`t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` within 300 s), requires the
//! idempotency key and the SPEC §5 object; and through `logward run` with a route to it.

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
use logward::notify::webhook::Webhook;
use logward::notify::{Outcome, Sender};

const SECRET: &str = "whsec-logward-9c1d";

fn signed() -> Provider {
    Provider::Webhook {
        secret: Some(SECRET.into()),
    }
}

fn signed_server() -> ChatServer {
    ChatServer::start(signed())
}

fn webhook(server: &ChatServer, signing: Option<&str>) -> Webhook {
    Webhook::new(
        "hook".into(),
        secret(&server.url()),
        signing.map(secret),
        vec![("Authorization".into(), secret("Bearer hdr-TOKEN-5"))],
    )
}

#[test]
fn the_escalation_object_is_posted_signed_with_key_and_custom_headers() {
    let server = signed_server();
    let mut w = webhook(&server, Some(SECRET));
    let esc = plain_escalation();
    assert_eq!(
        w.send(&esc, "idem-123"),
        Outcome::Accepted {
            answer: "HTTP 204".into()
        }
    );
    let got = server.wait_accepted(1);
    let r = &got[0];
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("x-logward-idempotency-key"), Some("idem-123"));
    assert_eq!(r.header("authorization"), Some("Bearer hdr-TOKEN-5"));
    assert!(r.header("x-logward-signature").unwrap().starts_with("t="));
    assert_eq!(
        r.raw,
        serde_json::to_vec(&esc).unwrap(),
        "exactly the SPEC §5 object"
    );
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), logward::escalation::KEYS.len());
}

#[test]
fn the_same_key_goes_with_every_retry() {
    let server = signed_server();
    let mut w = webhook(&server, Some(SECRET));
    server.then(Script::Http {
        status: 503,
        body: "busy".into(),
        retry_after: None,
    });
    assert!(matches!(
        w.send(&plain_escalation(), "idem-7"),
        Outcome::Retry { .. }
    ));
    assert!(matches!(
        w.send(&plain_escalation(), "idem-7"),
        Outcome::Accepted { .. }
    ));
    let keys: Vec<String> = server
        .received()
        .iter()
        .map(|r| r.header("x-logward-idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(keys, ["idem-7", "idem-7"]);
}

#[test]
fn a_wrong_signature_is_refused_with_401_and_not_retried() {
    let server = signed_server();
    let mut w = webhook(&server, Some("not-the-secret"));
    assert_eq!(
        w.send(&plain_escalation(), "k"),
        Outcome::Rejected {
            reason: "receiver `hook`: HTTP 401: signature: mismatch".into()
        }
    );
    let mut unsigned = webhook(&server, None);
    assert_eq!(
        unsigned.send(&plain_escalation(), "k"),
        Outcome::Rejected {
            reason: "receiver `hook`: HTTP 401: signature: missing".into()
        }
    );
    assert!(server.accepted().is_empty());
}

#[test]
fn hostile_log_lines_arrive_as_json_strings_byte_for_byte() {
    let server = signed_server();
    let mut w = webhook(&server, Some(SECRET));
    let lines = hostile_lines();
    for line in &lines {
        assert!(matches!(
            w.send(&escalation(line), "k"),
            Outcome::Accepted { .. }
        ));
    }
    let got = server.wait_accepted(lines.len());
    for (line, r) in lines.iter().zip(&got) {
        assert_eq!(r.body["sample"]["line"].as_str(), Some(line.as_str()));
    }
}

#[test]
fn a_429_honours_retry_after_and_a_400_is_rejected() {
    let server = signed_server();
    let mut w = webhook(&server, Some(SECRET));
    server.then(Script::Http {
        status: 429,
        body: "slow down".into(),
        retry_after: Some("30".into()),
    });
    assert_eq!(
        w.send(&plain_escalation(), "k"),
        Outcome::Retry {
            after: Some(Duration::from_secs(30)),
            reason: "receiver `hook`: HTTP 429: slow down".into()
        }
    );
    server.then(Script::Http {
        status: 408,
        body: "".into(),
        retry_after: None,
    });
    assert!(matches!(
        w.send(&plain_escalation(), "k"),
        Outcome::Retry { .. }
    ));
    server.then(Script::Http {
        status: 400,
        body: "bad event".into(),
        retry_after: None,
    });
    assert_eq!(
        w.send(&plain_escalation(), "k"),
        Outcome::Rejected {
            reason: "receiver `hook`: HTTP 400: bad event".into()
        }
    );
}

#[test]
fn secrets_never_show_in_debug_or_errors() {
    let mut w = Webhook::new(
        "hook".into(),
        secret(&format!(
            "http://127.0.0.1:{}/hooks/logward/{TOKEN}",
            closed_port()
        )),
        Some(secret(SECRET)),
        vec![("Authorization".into(), secret("Bearer hdr-TOKEN-5"))],
    );
    let Outcome::Retry { reason, .. } = w.send(&plain_escalation(), "k") else {
        panic!("a closed port is retried")
    };
    for s in [TOKEN, SECRET, "hdr-TOKEN-5", "/hooks/"] {
        assert!(!reason.contains(s), "{s} in {reason}");
    }
}

/// `logward run` and `check` with a webhook receiver whose URL, secret and custom header come
/// from the environment: the escalation arrives signed with the header, and none of them shows
/// in any output.
#[test]
fn run_sends_the_custom_header_and_check_and_run_hide_it() {
    let server = signed_server();
    let url = server.url();
    let d = common::delivery::Delivery::new(
        &[(
            "hook",
            "type = \"webhook\"\nurl = \"${HOOK_URL}\"\nsecret = \"${HOOK_SECRET}\"\nheaders = { Authorization = \"${HOOK_AUTH}\" }",
        )],
        &[
            ("HOOK_URL", url.as_str()),
            ("HOOK_SECRET", SECRET),
            ("HOOK_AUTH", "Bearer hdr-TOKEN-5"),
        ],
    );
    let check = d.run(&["check"]);
    assert!(check.status.success(), "{}", check.all_output());
    let agent = d.start();
    d.error("api");
    let got = server.wait_accepted(1);
    let (status, stdout, stderr) = agent.stop_capturing();
    assert!(status.success(), "{stderr}");
    assert_eq!(got[0].body["route"], "errors");
    assert_eq!(got[0].body["receiver"], "hook");
    assert_eq!(got[0].header("authorization"), Some("Bearer hdr-TOKEN-5"));
    common::delivery::assert_no_secret(
        &[TOKEN, SECRET, "hdr-TOKEN-5"],
        &[
            ("`logward check`".into(), check.all_output()),
            ("the agent's stdout".into(), stdout),
            ("the agent's stderr".into(), stderr),
        ],
    );
}

// Through `logward run` (scenarios in tests/common/web_delivery.rs).

#[test]
fn run_retries_a_429_no_sooner_than_retry_after_and_delivers_once() {
    web_delivery::retried_after_a_429_no_sooner_than_retry_after(signed());
}

#[test]
fn run_does_not_retry_a_400() {
    web_delivery::its_permanent_error_is_not_retried(signed());
}

#[test]
fn run_delivers_once_with_the_same_idempotency_key_after_kill_9() {
    web_delivery::in_flight_at_kill_9_is_delivered_once_after_the_restart(signed());
}

#[test]
fn run_shows_the_url_token_and_signing_secret_nowhere() {
    web_delivery::secrets_show_nowhere(signed());
}

/// HTTPS to a server whose certificate a private CA signed, trusted through `ca_file`: the
/// escalation arrives (and the binary's rustls set-up, one crypto provider, survives a real
/// handshake). Without `ca_file` the server is not trusted: the attempt fails on the
/// certificate (the system's roots do not hold the private CA) and nothing arrives.
#[test]
fn run_delivers_over_https_to_a_private_ca_named_by_ca_file() {
    let ca = common::tls::TestCa::new();
    let server = ChatServer::start_tls(signed(), &ca.cert, &ca.key);
    let url = server.url();
    assert!(url.starts_with("https://localhost:"), "{url}");
    let table = "type = \"webhook\"\nurl = \"${HOOK_URL}\"\nsecret = \"${HOOK_SECRET}\"";
    let trusted = format!("{table}\nca_file = \"{}\"", ca.ca.display());
    let d = common::delivery::Delivery::new(
        &[("hook", &trusted), ("untrusted", table)],
        &[("HOOK_URL", url.as_str()), ("HOOK_SECRET", SECRET)],
    );
    let refused = d.run(&["notify", "test", "untrusted"]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.all_output());
    assert!(
        refused.stderr.contains("certificate"),
        "fails on the certificate: {}",
        refused.stderr
    );
    assert!(server.received().is_empty());

    let agent = d.start();
    d.error("api");
    let got = server.wait_accepted(1);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(got[0].body["receiver"], "hook");
    assert_eq!(server.received().len(), 1, "nothing from `untrusted`");
}
