//! Routes, windows and receivers through the public CLI: what is escalated,
//! once, to which receiver, across restarts, `kill -9` and silences; and what
//! `replay` says the routes would have done.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Config, Env, read_ndjson, run_to_exit, wait_until};
use serde_json::Value;

/// Routes every error to `receivers`: `audit`, a `file` receiver
/// (`escalations.ndjson`), and/or `console`.
fn routes(env: &Env, receivers: &str, route_extra: &str) -> String {
    format!(
        r#"
[receiver.console]
type = "console"

[receiver.audit]
type = "file"
path = "{}"

[[route]]
name = "errors"
match = {{ level = ">=error" }}
receivers = [{receivers}]
{route_extra}
"#,
        escalations_path(env).display()
    )
}

const AUDIT: &str = "\"audit\"";

fn escalations_path(env: &Env) -> PathBuf {
    env.path("escalations.ndjson")
}

fn escalations(env: &Env) -> Vec<Value> {
    read_ndjson(&escalations_path(env))
}

fn kinds(escalations: &[Value]) -> Vec<(&str, u64, u64)> {
    escalations
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default(),
                e["count"].as_u64().unwrap_or_default(),
                e["suppressed"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// `replay -c CONFIG FILE`: the events (stdout) and the escalations (stderr).
fn replay(config: &Path, file: &Path) -> (Vec<Value>, Vec<Value>) {
    let out = run_to_exit(
        &[
            "replay",
            "-c",
            config.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[],
        b"",
    );
    assert!(out.status.success(), "{}", out.all_output());
    let parse = |text: &str| -> Vec<Value> {
        text.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    (parse(&out.stdout), parse(&out.stderr))
}

#[test]
fn ten_thousand_identical_errors_give_one_first_and_one_summary() {
    let env = Env::new();
    let text: String = (0..10_000)
        .map(|i| {
            format!(
                "2026-11-22T10:{:02}:{:02}.{:03}Z ERROR [api] connection to 10.1.2.{}:5432 refused after {}ms\n",
                i / 1000 % 60,
                i / 17 % 60,
                i % 1000,
                i % 250,
                i
            )
        })
        .collect();
    let log = env.write("logs/app.log", &text);
    let config = env.config_with(Config {
        top_extra: &routes(&env, AUDIT, "window = \"1h\""),
        ..Config::default()
    });
    let (events, escalations) = replay(&config, &log);
    assert_eq!(events.len(), 10_000);
    let fingerprints: std::collections::HashSet<&str> = events
        .iter()
        .map(|e| e["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(fingerprints.len(), 1, "different numbers, same fingerprint");
    assert_eq!(
        kinds(&escalations),
        [("first", 1, 0), ("summary", 10_000, 9_999)],
        "{escalations:#?}"
    );
    assert_eq!(escalations[1]["first_seen"], events[0]["ts"]);
}

#[test]
fn replay_prints_escalations_on_event_time() {
    let env = Env::new();
    // Two bursts an hour apart: two windows of 10 minutes, by the lines' own time.
    let mut text = String::new();
    for (hour, n) in [(10, 3), (12, 2)] {
        for i in 0..n {
            text.push_str(&format!(
                "2026-11-22T{hour}:00:0{i}Z ERROR [api] upstream timed out\n"
            ));
        }
    }
    let log = env.write("logs/app.log", &text);
    let config = env.config_with(Config {
        top_extra: &routes(&env, AUDIT, "window = \"10m\"\nrepeat_interval = \"1h\""),
        ..Config::default()
    });
    let (_, escalations) = replay(&config, &log);
    assert_eq!(
        kinds(&escalations),
        [
            ("first", 1, 0),
            ("summary", 3, 2),
            // Two hours on, past `repeat_interval`: a new first.
            ("first", 1, 0),
            ("summary", 2, 1)
        ],
        "{escalations:#?}"
    );
    assert_eq!(escalations[0]["first_seen"], "2026-11-22T10:00:00Z");
    assert_eq!(escalations[1]["last_seen"], "2026-11-22T10:00:02Z");
    assert_eq!(escalations[2]["first_seen"], "2026-11-22T12:00:00Z");
    for e in &escalations {
        assert_eq!(e["route"], "errors");
        assert_eq!(e["receiver"], "audit");
        assert!(
            e["loki_query"]
                .as_str()
                .unwrap()
                .contains("upstream timed out"),
            "{e}"
        );
    }
    assert!(
        !escalations_path(&env).exists(),
        "replay sends nothing, it prints"
    );
}

#[test]
fn console_and_file_receivers_get_each_escalation_once() {
    let env = Env::new();
    let config = env.config_with(Config {
        top_extra: &routes(&env, "\"console\", \"audit\"", "group_by = [\"service\"]"),
        ..Config::default()
    });
    env.append(
        "app.log",
        "2026-11-22T10:00:00Z INFO [api] started\n\
2026-11-22T10:00:01Z ERROR [api] <!channel> @all disk full on /var\n\
2026-11-22T10:00:02Z ERROR [api] disk full on /tmp\n",
    );
    let stdout = env.path("agent.stdout");
    let agent = env.start_with_stdout(&config, &stdout);
    wait_until("one escalation in the file receiver", &agent, || {
        (escalations(&env).len() == 1).then_some(())
    });
    wait_until("the console block", &agent, || {
        let text = fs::read_to_string(&stdout).ok()?;
        text.contains("route errors").then_some(text)
    });
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    let file = escalations(&env);
    assert_eq!(kinds(&file)[0].0, "first");
    let first = &file[0];
    for key in logward::escalation::KEYS {
        assert!(first.get(key).is_some(), "{key} missing: {first:#}");
    }
    assert_eq!(first["group"]["service"], "api");
    assert_eq!(
        first["context"],
        serde_json::json!(["2026-11-22T10:00:00Z INFO [api] started"]),
        "the line before, from the same stream"
    );
    let console = fs::read_to_string(&stdout).unwrap();
    assert_eq!(console.matches("route errors").count(), 1, "{console}");
    assert!(console.contains("disk full"), "{console}");
}

#[test]
fn kill_9_then_reread_does_not_renotify() {
    let env = Env::new();
    let config = env.config_with(Config {
        top_extra: &routes(&env, AUDIT, "group_by = [\"service\"]"),
        ..Config::default()
    });
    env.append("app.log", "2026-11-22T10:00:01Z ERROR [api] boom\n");
    let agent = env.start(&config);
    wait_until("the first escalation", &agent, || {
        (escalations(&env).len() == 1).then_some(())
    });
    agent.kill9();
    // Every line is read again, as after a crash before any checkpoint.
    fs::remove_file(env.path("state/positions.json")).ok();
    env.append("app.log", "2026-11-22T10:00:02Z ERROR [api] boom again\n");
    let agent = env.start(&config);
    env.wait_for_events(3, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        kinds(&escalations(&env)),
        [("first", 1, 0)],
        "the group was notified before the crash: the re-read is counted, not notified"
    );
}

#[test]
fn a_silence_added_while_running_suppresses_until_it_is_expired() {
    let env = Env::new();
    let addr = common::free_addr();
    let top = format!(
        "{}\n{}",
        common::http_table(addr),
        routes(&env, AUDIT, "group_by = [\"message\"]")
    );
    let config = env.config_with(Config {
        top_extra: &top,
        ..Config::default()
    });
    let agent = env.start(&config);
    common::wait_ready(&agent);
    let cfg = config.to_str().unwrap();
    let added = run_to_exit(
        &[
            "silence",
            "add",
            "-c",
            cfg,
            "--match",
            "service=api",
            "--for",
            "1h",
            "--comment",
            "deploy",
        ],
        &[],
        b"",
    );
    assert!(added.status.success(), "{}", added.all_output());
    let id = added.stdout.trim().to_string();
    // The agent re-reads silences about once a second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    env.append("app.log", "2026-11-22T10:00:01Z ERROR [api] silenced one\n");
    wait_until("the silenced event counted", &agent, || {
        let n = common::try_metric(
            addr,
            "logward_suppressed_total{route=\"errors\",reason=\"silenced\"}",
        )?;
        (n >= 1.0).then_some(())
    });
    assert!(escalations(&env).is_empty(), "{:?}", escalations(&env));

    let expired = run_to_exit(&["silence", "expire", "-c", cfg, &id], &[], b"");
    assert!(expired.status.success(), "{}", expired.all_output());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    env.append("app.log", "2026-11-22T10:00:02Z ERROR [api] heard again\n");
    wait_until("an escalation after the silence", &agent, || {
        (!escalations(&env).is_empty()).then_some(())
    });
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    let all = escalations(&env);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["message"], "heard again");
}

#[test]
fn build_host_example_gives_one_notification_per_failing_run() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let checked = run_to_exit(
        &[
            "check",
            "-c",
            examples.join("build-host.toml").to_str().unwrap(),
        ],
        &[],
        b"",
    );
    assert!(checked.status.success(), "{}", checked.all_output());
    let mut firsts = Vec::new();
    for log in [
        "gitlab-job-4242.log",
        "github-actions-977.log",
        "jenkins-build-118.log",
        "deploy-api.log",
    ] {
        let (_, escalations) = replay(
            &examples.join("build-host.toml"),
            &examples.join("logs").join(log),
        );
        firsts.extend(
            escalations
                .into_iter()
                .filter(|e| {
                    e["route"] == "ci-run-failures"
                        && e["receiver"] == "audit"
                        && e["kind"] == "first"
                })
                .map(|e| e["ci_run_id"].as_str().unwrap_or_default().to_string()),
        );
    }
    assert_eq!(firsts, ["88130", "977", "118", "123456"]);
}

#[test]
fn routes_are_checked_with_their_location() {
    let env = Env::new();
    let config = env.config_with(Config {
        top_extra: "[receiver.chat]\ntype = \"console\"\n\n[[route]]\nname = \"a\"\nmatch = { level = \">=bogus\" }\nreceivers = [\"chta\"]\n",
        ..Config::default()
    });
    let out = run_to_exit(&["check", "-c", config.to_str().unwrap()], &[], b"");
    assert_eq!(out.status.code(), Some(1), "{}", out.all_output());
    let text = out.all_output();
    assert!(text.contains("invalid `match`"), "{text}");
    assert!(
        text.contains("unknown receiver `chta`") && text.contains("`chat`"),
        "{text}"
    );
    assert!(text.contains("logward.toml:"), "{text}");
}

/// Two patterns: a run's failure and the errors of its lines.
const RUN_PATTERNS: &str = r#"
[[pattern]]
id    = "test.job-failed"
regex = '^(?P<ts>\S+) JOB FAILED run=(?P<ci_run_id>\d+)'
level = "error"

[[pattern]]
id    = "test.error"
regex = '^(?P<ts>\S+) ERROR (?P<message>[a-z ]+) run=(?P<ci_run_id>\d+)'
level = "error"

[[pattern]]
id             = "test.login"
regex          = '^(?P<message>login ok for \w+)'
level          = "error"
mine_templates = false

[[pattern]]
id    = "test.logout"
regex = '^(?P<message>logout ok for \w+)'
level = "error"
"#;

fn run_patterns_config(env: &Env, route_extra: &str) -> PathBuf {
    env.write("run-patterns.toml", RUN_PATTERNS);
    let top = format!(
        "patterns = [{:?}]\n{}",
        env.path("run-patterns.toml").display().to_string(),
        routes(env, AUDIT, route_extra)
    );
    env.config_with(Config {
        top_extra: &top,
        ..Config::default()
    })
}

#[test]
fn a_configured_inhibit_rule_counts_a_failed_runs_line_errors() {
    let env = Env::new();
    let config = run_patterns_config(
        &env,
        "group_by = [\"fingerprint\", \"ci_run_id\"]\ninhibit = [{ source = { pattern = \"test.job-failed\" }, target = { level = \">=error\" }, equal = [\"ci_run_id\"] }]",
    );
    let log = env.write(
        "logs/app.log",
        "2026-11-22T10:00:00Z JOB FAILED run=1\n\
2026-11-22T10:00:01Z ERROR disk full run=1\n\
2026-11-22T10:00:02Z ERROR net down run=1\n\
2026-11-22T10:00:03Z ERROR disk full run=2\n",
    );
    let (_, escalations) = replay(&config, &log);
    let firsts: Vec<(&str, &str)> = escalations
        .iter()
        .filter(|e| e["kind"] == "first")
        .map(|e| {
            (
                e["pattern"].as_str().unwrap_or_default(),
                e["ci_run_id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        firsts,
        [("test.job-failed", "1"), ("test.error", "2")],
        "run 1's line errors are counted, not notified: {escalations:#?}"
    );
}

#[test]
fn the_template_miner_merges_a_varying_word_unless_the_pattern_opts_out() {
    let env = Env::new();
    let config = run_patterns_config(&env, "");
    let log = env.write(
        "logs/app.log",
        "login ok for alice\nlogin ok for bob\nlogout ok for alice\nlogout ok for bob\n",
    );
    let (events, _) = replay(&config, &log);
    let t = |i: usize| {
        events[i]["template"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let fp = |i: usize| events[i]["fingerprint"].clone();
    assert_eq!(
        (t(0), t(1)),
        (
            "login ok for alice".to_string(),
            "login ok for bob".to_string()
        ),
        "mine_templates = false keeps each template"
    );
    assert_ne!(fp(0), fp(1));
    assert_eq!(
        t(3),
        "logout ok for <*>",
        "the miner merges the varying word"
    );
    assert_eq!(
        fp(2),
        fp(3),
        "and the fingerprint does not change when it does"
    );
}
