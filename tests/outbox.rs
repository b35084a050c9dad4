//! Delivery through the outbox: a receiver that fails is retried until it works and gets
//! each escalation exactly once; an escalation in the outbox at `kill -9` is sent after the
//! restart.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{Config, Env, read_ndjson, run_to_exit, wait_until};

/// `audit` writes to `blocked/escalations.ndjson`, where `blocked` is a regular file: the
/// receiver cannot create its directory until the test removes it.
fn blocked_setup(env: &Env) -> PathBuf {
    fs::write(env.path("blocked"), b"not a directory").unwrap();
    env.config_with(Config {
        top_extra: &format!(
            r#"
[receiver.audit]
type = "file"
path = "{}"

[[route]]
name = "errors"
match = {{ level = ">=error" }}
receivers = ["audit"]
group_by = ["service"]
"#,
            target(env).display()
        ),
        ..Config::default()
    })
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
