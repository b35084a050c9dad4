//! The `nats` receiver against a real `nats-server` with JetStream (tests/common/nats_server.rs),
//! through `logward run`, `check` and `notify test`: the escalation object published with
//! `Nats-Msg-Id` and acked, the stream created when missing, subjects that log content cannot
//! reshape, the outbox across a server that is down and a `kill -9`, secrets kept out of every
//! output, and refusals (a wrong token, a stream that does not capture the subject) named.

mod common;
#[path = "common/nats_server.rs"]
mod nats_server;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Config, Env, free_addr, http_get, http_table, run_to_exit, wait_until};
use logward::config::{self, ReceiverKind};
use logward::escalation::{KEYS, sample_escalation};
use logward::notify::nats::{DUPLICATE_WINDOW, Nats};
use logward::notify::{Outcome, Sender};
use nats_server::NatsServer;

const TOKEN: &str = "nats-T0KEN-5ecret-81f2";

/// The `bus` receiver's table, with `extra` keys.
fn bus(url: &str, extra: &str) -> String {
    format!(
        "[receiver.bus]\ntype = \"nats\"\nurl = \"{url}\"\nsubject = \"logward.{{level}}.{{service}}\"\nstream = \"LOGWARD\"\n{extra}\n"
    )
}

/// A route `errors` to `receivers` (quoted, comma-separated), one group per service.
fn route(receivers: &str) -> String {
    format!("[[route]]\nname = \"errors\"\nreceivers = [{receivers}]\ngroup_by = [\"service\"]\n")
}

/// `logward.toml` in `env`, with `top` (receivers, routes, `[http]`) at its top.
fn write_config(env: &Env, top: &str) -> PathBuf {
    env.config_with(Config {
        top_extra: top,
        ..Config::default()
    })
}

/// A config whose one receiver is `bus` (with `extra` keys), on `url`.
fn bus_config(env: &Env, url: &str, extra: &str) -> PathBuf {
    write_config(env, &format!("{}{}", bus(url, extra), route("\"bus\"")))
}

/// The message is the escalation object byte for byte as the `file` receiver writes it (an
/// `audit` receiver on the same route), with the idempotency key as `Nats-Msg-Id`; the agent
/// counts it delivered on the stream's ack.
#[test]
fn nats_publish_waits_for_ack() {
    let server = NatsServer::start();
    let env = Env::new();
    let audit = env.path("audit.ndjson");
    let top = format!(
        "{}[receiver.audit]\ntype = \"file\"\npath = {:?}\n\n{}",
        bus(&server.url(), ""),
        audit.display().to_string(),
        route("\"bus\", \"audit\"")
    );
    let config = write_config(&env, &top);
    let agent = env.start(&config);
    env.append("app.log", "2026-11-22T10:00:01Z ERROR [api] disk full\n");
    let got = server.wait_messages("LOGWARD", 1, || agent.stderr());
    wait_until("the escalations to leave the outbox", &agent, || {
        (env.outbox_items().is_empty() && fs::read(&audit).is_ok_and(|a| a.ends_with(b"\n")))
            .then_some(())
    });
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(got.len(), 1, "{got:#?}");
    let m = &got[0];
    assert_eq!(m.subject, "logward.error.api");
    let line = fs::read_to_string(&audit).unwrap();
    let as_bus = line
        .trim_end()
        .replacen("\"receiver\":\"audit\"", "\"receiver\":\"bus\"", 1);
    assert_eq!(
        String::from_utf8_lossy(&m.raw),
        as_bus,
        "the SPEC §5 object, as the file receiver writes it"
    );
    let keys: Vec<&str> = m
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), KEYS.len());
    assert_eq!(
        (&m.body["route"], &m.body["kind"]),
        (&"errors".into(), &"first".into())
    );
    let id = m.msg_id.as_deref().expect("a Nats-Msg-Id header");
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "the idempotency key: {id}"
    );
    assert!(
        stderr.contains("\"stream LOGWARD seq 1\""),
        "the ack is what delivered it\n{stderr}"
    );
}

#[test]
fn the_stream_is_created_when_missing_and_notify_test_prints_the_ack() {
    let server = NatsServer::start();
    assert!(server.stream("LOGWARD").is_none());
    let env = Env::new();
    let config = bus_config(&env, &server.url(), "");
    let path = config.to_str().unwrap();
    let sent = run_to_exit(&["notify", "test", "bus", "-c", path], &[], b"");
    assert_eq!(sent.status.code(), Some(0), "{}", sent.all_output());
    assert_eq!(sent.stdout, "accepted: stream LOGWARD seq 1\n");
    let created = server.stream("LOGWARD").expect("created");
    assert_eq!(created.subjects, ["logward.*.*"], "the template's filter");
    assert_eq!(
        created.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert_eq!(created.duplicate_window, DUPLICATE_WINDOW);
    let got = server.messages("LOGWARD");
    assert_eq!(got[0].subject, "logward.error.logward");
    assert_eq!(got[0].body["route"], "logward-test");
    let again = run_to_exit(&["notify", "test", "bus", "-c", path], &[], b"");
    assert_eq!(
        again.stdout, "accepted: stream LOGWARD seq 2\n",
        "{}",
        again.stderr
    );
}

#[test]
fn a_stream_that_does_not_capture_the_subject_is_a_rejection_with_the_fix() {
    let server = NatsServer::start();
    server.create_stream("LOGWARD", &["elsewhere.>"]);
    let env = Env::new();
    let config = bus_config(&env, &server.url(), "");
    let refused = run_to_exit(
        &["notify", "test", "bus", "-c", config.to_str().unwrap()],
        &[],
        b"",
    );
    assert_eq!(refused.status.code(), Some(1), "{}", refused.all_output());
    assert!(
        refused.stderr.contains(
            "rejected it: receiver `bus`: stream `LOGWARD` does not capture subject `logward.error.logward` (its subjects: elsewhere.>); add `logward.*.*` to its subjects"
        ),
        "{}",
        refused.stderr
    );
    assert!(server.messages("LOGWARD").is_empty());
}

#[test]
fn hostile_service_and_level_values_cannot_alter_the_subject() {
    let server = NatsServer::start();
    let env = Env::new();
    let config = bus_config(&env, &server.url(), "");
    let agent = env.start(&config);
    let lines = [
        (
            r#"{"level":"error","service":"api.>","msg":"boom"}"#,
            "logward.error.api__",
        ),
        (
            r#"{"level":"error","service":"*","msg":"boom"}"#,
            "logward.error._",
        ),
        (
            r#"{"level":"error","service":"$JS.API.STREAM.DELETE.LOGWARD","msg":"boom"}"#,
            "logward.error._JS_API_STREAM_DELETE_LOGWARD",
        ),
        (
            r#"{"level":"err.>","service":"a b\tc","msg":"boom"}"#,
            "logward.none.a_b_c",
        ),
        (
            r#"{"level":"error","service":"","msg":"boom"}"#,
            "logward.error.none",
        ),
    ];
    for (line, _) in &lines {
        env.append("app.log", &format!("{line}\n"));
    }
    let got = server.wait_messages("LOGWARD", lines.len(), || agent.stderr());
    let mut subjects: Vec<&str> = got.iter().map(|m| m.subject.as_str()).collect();
    subjects.sort_unstable();
    let mut expected: Vec<&str> = lines.iter().map(|(_, s)| *s).collect();
    expected.sort_unstable();
    assert_eq!(subjects, expected);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        server.messages("LOGWARD").len(),
        lines.len(),
        "nothing else"
    );
    assert!(
        server.stream("LOGWARD").is_some(),
        "the stream is still there"
    );
}

#[test]
fn server_down_at_start_keeps_the_escalation_in_the_outbox_until_it_comes_up() {
    let mut server = NatsServer::new();
    let env = Env::new();
    let config = bus_config(&env, &server.url(), "");
    let agent = env.start(&config);
    env.append("app.log", "2026-11-22T10:00:01Z ERROR [api] disk full\n");
    wait_until("a failed attempt", &agent, || {
        agent.stderr().contains("will retry").then_some(())
    });
    assert_eq!(env.outbox_items().len(), 1, "waiting in the outbox");
    assert!(
        agent.stderr().contains("cannot connect"),
        "{}",
        agent.stderr()
    );
    server.up();
    let got = server.wait_messages("LOGWARD", 1, || agent.stderr());
    wait_until("the outbox to empty", &agent, || {
        env.outbox_items().is_empty().then_some(())
    });
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(got.len(), 1);
    assert_eq!(server.messages("LOGWARD").len(), 1, "exactly once");
}

/// A crash between the stream's ack and the removal from the outbox: the item, saved while it
/// waited for the server, is put back after the delivery, and the restarted agent sends it
/// again with the same `Nats-Msg-Id`; the stream keeps one message.
#[test]
fn an_escalation_sent_again_after_kill_9_is_stored_once() {
    let mut server = NatsServer::new();
    let env = Env::new();
    let config = bus_config(&env, &server.url(), "");
    let agent = env.start(&config);
    env.append("app.log", "2026-11-22T10:00:01Z ERROR [api] disk full\n");
    let item = wait_until("the escalation waiting in the outbox", &agent, || {
        env.outbox_items().pop()
    });
    let saved = fs::read(&item).unwrap();
    agent.kill9();
    assert!(item.exists(), "kill -9 left it in the outbox");
    server.up();
    let agent = env.start(&config);
    let first = server.wait_messages("LOGWARD", 1, || agent.stderr());
    wait_until("the outbox to empty", &agent, || {
        env.outbox_items().is_empty().then_some(())
    });
    agent.kill9();
    fs::write(&item, &saved).unwrap();
    let agent = env.start(&config);
    wait_until("the restored item to be sent and removed", &agent, || {
        (env.outbox_items().is_empty() && agent.stderr().contains("duplicate: already stored"))
            .then_some(())
    });
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    let stored = server.messages("LOGWARD");
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert!(stored[0].msg_id.is_some());
    assert_eq!(stored[0].msg_id, first[0].msg_id);
}

/// A token in the url (from the environment) and one in `token`: the agent publishes through
/// both, and neither shows in `check`, the agent's output or its metrics.
#[test]
fn secrets_never_show_in_check_output_or_metrics() {
    let server = NatsServer::new().token(TOKEN).started();
    let env = Env::new();
    let addr = free_addr();
    let top = format!(
        r#"{http}
[receiver.bus]
type = "nats"
url = "${{NATS_URL}}"
subject = "logward.{{receiver}}.{{service}}"
stream = "LOGWARD"

[receiver.keyed]
type = "nats"
url = "{url}"
token = "${{NATS_TOKEN}}"
subject = "logward.{{receiver}}.{{service}}"
stream = "LOGWARD"

[[route]]
name = "errors"
receivers = ["bus", "keyed"]
"#,
        http = http_table(addr),
        url = server.url(),
    );
    let config = write_config(&env, &top);
    let in_url = format!("nats://{TOKEN}@127.0.0.1:{}", server.port);
    let vars = [("NATS_URL", in_url.as_str()), ("NATS_TOKEN", TOKEN)];
    let check = run_to_exit(&["check", "-c", config.to_str().unwrap()], &vars, b"");
    assert_eq!(check.status.code(), Some(0), "{}", check.all_output());
    let mut all = check.all_output();
    let agent = env.start_capturing(&config, &vars);
    env.append("app.log", "2026-11-22T10:00:01Z ERROR [api] disk full\n");
    let got = server.wait_messages("LOGWARD", 2, || agent.stderr());
    let mut subjects: Vec<&str> = got.iter().map(|m| m.subject.as_str()).collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ["logward.bus.api", "logward.keyed.api"]);
    let (_, metrics) = wait_until("/metrics", &agent, || http_get(addr, "/metrics").ok());
    all += &metrics;
    all += &agent.stdout();
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    all += &stderr;
    assert!(metrics.contains("receiver=\"keyed\""), "{metrics}");
    assert!(!all.contains(TOKEN), "the token shows:\n{all}");
}

#[test]
fn a_wrong_token_is_rejected_with_a_clear_reason() {
    let server = NatsServer::new().token(TOKEN).started();
    let env = Env::new();
    let config = bus_config(&env, &server.url(), "token = \"not-the-T0KEN\"");
    let refused = run_to_exit(
        &["notify", "test", "bus", "-c", config.to_str().unwrap()],
        &[],
        b"",
    );
    assert_eq!(refused.status.code(), Some(1), "{}", refused.all_output());
    assert!(
        refused.stderr.contains(
            "receiver `bus` rejected it: receiver `bus`: the server refused the login (authorization violation): check the token"
        ),
        "{}",
        refused.stderr
    );
    assert!(!refused.all_output().contains("not-the-T0KEN"));
    assert!(server.messages("LOGWARD").is_empty());
}

#[test]
fn a_user_and_password_in_the_url_log_in() {
    let server = NatsServer::new().user("logward", "p@ss:w0rd").started();
    let env = Env::new();
    let url = format!("nats://logward:p%40ss%3Aw0rd@127.0.0.1:{}", server.port);
    let config = bus_config(&env, &url, "");
    let sent = run_to_exit(
        &["notify", "test", "bus", "-c", config.to_str().unwrap()],
        &[],
        b"",
    );
    assert_eq!(sent.status.code(), Some(0), "{}", sent.all_output());
    assert_eq!(sent.stdout, "accepted: stream LOGWARD seq 1\n");
    let wrong = bus_config(
        &env,
        &server.url(),
        "username = \"logward\"\npassword = \"not-the-pass\"",
    );
    let refused = run_to_exit(
        &["notify", "test", "bus", "-c", wrong.to_str().unwrap()],
        &[],
        b"",
    );
    assert!(
        refused
            .stderr
            .contains("authorization violation): check `username` and the password"),
        "{}",
        refused.stderr
    );
}

/// TLS with the server's CA in `ca_file`: the one rustls crypto provider (aws-lc-rs) serves
/// this client as it serves the HTTP and SMTP ones.
#[test]
fn tls_with_a_ca_file_connects_and_publishes() {
    let server = NatsServer::new().tls().started();
    let env = Env::new();
    let ca = server.ca_file();
    let extra = format!("tls = true\nca_file = {:?}", ca.display().to_string());
    let config = bus_config(&env, &server.url(), &extra);
    let sent = run_to_exit(
        &["notify", "test", "bus", "-c", config.to_str().unwrap()],
        &[],
        b"",
    );
    assert_eq!(sent.status.code(), Some(0), "{}", sent.all_output());
    assert_eq!(sent.stdout, "accepted: stream LOGWARD seq 1\n");
    // Without the CA the server's certificate is not trusted: no silent fallback.
    let untrusted = bus_config(&env, &server.url(), "tls = true");
    let refused = run_to_exit(
        &["notify", "test", "bus", "-c", untrusted.to_str().unwrap()],
        &[],
        b"",
    );
    assert_eq!(refused.status.code(), Some(1), "{}", refused.all_output());
    assert!(
        refused
            .stderr
            .contains("invalid peer certificate: UnknownIssuer"),
        "{}",
        refused.stderr
    );
}

/// A server that pings every second and drops a client after one unanswered ping: a
/// connection left idle between escalations still answers, so the next escalation goes out
/// on it, at the first attempt, without a new connection.
#[test]
fn an_idle_connection_keeps_answering_the_servers_pings() {
    let server = NatsServer::new()
        .conf("ping_interval: \"1s\"\nping_max: 1\ndebug: true\n")
        .started();
    let text = format!("{}{}", bus(&server.url(), ""), route("\"bus\""));
    let cfg =
        config::Config::parse(Path::new("logward.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let ReceiverKind::Nats(n) = &cfg.receivers["bus"].kind else {
        panic!("{:?}", cfg.receivers["bus"])
    };
    let mut sender = Nats::new("bus".into(), n);
    let esc = sample_escalation("bus", "build-01".into());
    assert_eq!(
        sender.send(&esc, "k1"),
        Outcome::Accepted {
            answer: "stream LOGWARD seq 1".into()
        }
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        sender.send(&esc, "k2"),
        Outcome::Accepted {
            answer: "stream LOGWARD seq 2".into()
        }
    );
    assert!(
        !server.log().contains("Stale Client Connection"),
        "the server dropped the idle connection\n{}",
        server.log()
    );
}
