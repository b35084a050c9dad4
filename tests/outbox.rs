//! Delivery through the outbox: a receiver that fails is retried until it works and gets
//! each escalation exactly once; an escalation in the outbox at `kill -9` is sent after the
//! restart; `replay --send` takes the same path.

#[path = "common/chat_server.rs"]
mod chat_server;
mod common;

use std::fs;
use std::path::PathBuf;

use chat_server::{ChatServer, Provider, Script};
use common::{Config, Env, read_ndjson, run_to_exit, wait_until};

/// A config whose `errors` route sends to receiver `name` (the TOML of its table's keys), one
/// group per service.
fn setup(env: &Env, name: &str, receiver: &str) -> PathBuf {
    env.config_with(Config {
        top_extra: &format!(
            r#"
[receiver.{name}]
{receiver}

[[route]]
name = "errors"
match = {{ level = ">=error" }}
receivers = ["{name}"]
group_by = ["service"]
"#
        ),
        ..Config::default()
    })
}

/// `audit` writes to `blocked/escalations.ndjson`, where `blocked` is a regular file: the
/// receiver cannot create its directory until the test removes it.
fn blocked_setup(env: &Env) -> PathBuf {
    fs::write(env.path("blocked"), b"not a directory").unwrap();
    let path = target(env);
    setup(
        env,
        "audit",
        &format!("type = \"file\"\npath = \"{}\"", path.display()),
    )
}

fn target(env: &Env) -> PathBuf {
    env.path("blocked/escalations.ndjson")
}

#[test]
fn a_failing_receiver_is_retried_and_gets_the_escalation_exactly_once() {
    let env = Env::new();
    let config = blocked_setup(&env);
    env.append("app.log", "2026-11-22T10:00:01Z ERROR [api] disk full\n");
    let agent = env.start(&config);
    wait_until("the escalation waiting in the outbox", &agent, || {
        (env.outbox_items().len() == 1).then_some(())
    });
    wait_until("a failed attempt", &agent, || {
        agent.stderr().contains("will retry").then_some(())
    });
    fs::remove_file(env.path("blocked")).unwrap();
    wait_until("the escalation delivered", &agent, || {
        (read_ndjson(&target(&env)).len() == 1 && env.outbox_items().is_empty()).then_some(())
    });
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    let sent = read_ndjson(&target(&env));
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0]["kind"], "first");
    assert_eq!(sent[0]["group"]["service"], "api");
}

#[test]
fn an_escalation_in_the_outbox_at_kill_9_is_delivered_after_the_restart() {
    let env = Env::new();
    let config = blocked_setup(&env);
    env.append("app.log", "2026-11-22T10:00:01Z ERROR [api] disk full\n");
    let agent = env.start(&config);
    wait_until("the escalation waiting in the outbox", &agent, || {
        (env.outbox_items().len() == 1).then_some(())
    });
    agent.kill9();
    fs::remove_file(env.path("blocked")).unwrap();
    let agent = env.start(&config);
    wait_until("the escalation delivered after the restart", &agent, || {
        (read_ndjson(&target(&env)).len() == 1 && env.outbox_items().is_empty()).then_some(())
    });
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(read_ndjson(&target(&env)).len(), 1, "exactly once");
}

#[test]
fn notify_test_sends_a_sample_and_prints_the_answer() {
    let env = Env::new();
    let config = blocked_setup(&env);
    let path = config.to_str().unwrap();
    let refused = run_to_exit(&["notify", "test", "audit", "-c", path], &[], b"");
    assert_eq!(refused.status.code(), Some(1), "{}", refused.all_output());
    assert!(
        refused.stderr.contains("receiver `audit`"),
        "{}",
        refused.stderr
    );
    fs::remove_file(env.path("blocked")).unwrap();
    let sent = run_to_exit(&["notify", "test", "audit", "-c", path], &[], b"");
    assert_eq!(sent.status.code(), Some(0), "{}", sent.all_output());
    assert!(
        sent.stdout.starts_with("accepted: appended to "),
        "{}",
        sent.stdout
    );
    let lines = read_ndjson(&target(&env));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["route"], "logward-test");
    let unknown = run_to_exit(&["notify", "test", "pager", "-c", path], &[], b"");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        unknown
            .stderr
            .contains("no receiver `pager`; configured: audit"),
        "{}",
        unknown.stderr
    );
    assert!(
        !env.path("state/outbox").exists() || env.outbox_items().is_empty(),
        "no outbox"
    );
}

/// A webhook server whose first answer is `status` with `body`, and a config sending to it.
fn scripted_webhook(env: &Env, status: u16, body: &str) -> (ChatServer, PathBuf) {
    let server = ChatServer::start(Provider::Webhook { secret: None });
    server.then(Script::Http {
        status,
        body: body.into(),
        retry_after: None,
    });
    let url = server.url();
    let config = setup(env, "hook", &format!("type = \"webhook\"\nurl = \"{url}\""));
    (server, config)
}

/// `logward replay --send -c CONFIG LOG`, to its exit.
fn replay_send(config: &std::path::Path, log: &std::path::Path) -> common::Finished {
    let (config, log) = (config.to_str().unwrap(), log.to_str().unwrap());
    run_to_exit(&["replay", "--send", "-c", config, log], &[], b"")
}

#[test]
fn replay_send_delivers_through_retries_and_reports_each_receiver() {
    let env = Env::new();
    let (server, config) = scripted_webhook(&env, 503, "busy");
    let log = env.write(
        "yesterday.log",
        "2026-11-22T10:00:01Z ERROR [api] disk full\n\
         2026-11-22T10:00:02Z INFO [api] retrying\n\
         2026-11-22T10:00:03Z ERROR [db] connection refused\n",
    );
    let done = replay_send(&config, &log);
    assert_eq!(done.status.code(), Some(0), "{}", done.all_output());
    let got = server.accepted();
    let mut services: Vec<String> = got
        .iter()
        .map(|r| r.body["service"].as_str().unwrap_or_default().to_string())
        .collect();
    services.sort();
    assert_eq!(services, ["api", "db"], "{got:#?}");
    assert!(
        got.iter()
            .all(|r| r.header("x-logward-idempotency-key").is_some()),
        "{got:#?}"
    );
    assert_eq!(server.received().len(), 3, "one refused attempt, retried");
    assert!(
        done.stderr.contains(
            "receiver `hook`: 2 sent, 2 accepted, 0 rejected, 0 over its rate (counted in a later escalation), 0 undelivered, 1 failed attempts"
        ),
        "{}",
        done.stderr
    );
    let printed: Vec<&str> = done.stderr.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(printed.len(), 2, "the escalations are still printed");
    assert!(
        !env.path("state/outbox").exists(),
        "replay --send never touches the agent's state_dir"
    );
}

#[test]
fn replay_send_exits_1_and_names_the_rejection() {
    let env = Env::new();
    let (server, config) = scripted_webhook(&env, 400, "bad payload: no such channel");
    let log = env.write(
        "yesterday.log",
        "2026-11-22T10:00:01Z ERROR [api] disk full\n",
    );
    let done = replay_send(&config, &log);
    assert_eq!(done.status.code(), Some(1), "{}", done.all_output());
    assert_eq!(server.received().len(), 1, "a 400 is not retried");
    assert!(
        done.stderr.contains("1 rejected") && done.stderr.contains("no such channel"),
        "{}",
        done.stderr
    );
    let without_config = run_to_exit(&["replay", "--send", log.to_str().unwrap()], &[], b"");
    assert_eq!(
        without_config.status.code(),
        Some(2),
        "{}",
        without_config.all_output()
    );
}
