//! CI-run correlation through `logward run`: the run id and other fields come
//! from the line, the file's path or a sticky marker earlier in the stream,
//! and the sticky context survives a restart.

mod common;

use std::fs;

use common::{Config, Env};
use serde_json::Value;

/// A pattern file with a start marker, an end marker and an ordinary pattern.
const MARKERS: &str = r#"
[[pattern]]
id      = "test.run-start"
regex   = '^=== run (?P<ci_run_id>\d+) on (?P<runner>\S+) ==='
context = true

[[pattern]]
id      = "test.run-end"
regex   = '^=== run finished: (?P<message>\w+)'
context = "end"

[[pattern]]
id    = "test.error"
regex = '^ERROR (?P<message>.*)'
level = "error"
"#;

fn run_ids(events: &[Value]) -> Vec<Option<&str>> {
    events.iter().map(|e| e["ci_run_id"].as_str()).collect()
}

fn with_markers(env: &Env, source_extra: &str) -> std::path::PathBuf {
    env.write("markers.toml", MARKERS);
    let patterns = format!(
        "patterns = [{:?}]",
        env.path("markers.toml").display().to_string()
    );
    env.config_with(Config {
        top_extra: &patterns,
        source_extra,
        ..Config::default()
    })
}

/// A source on `logs/builds/<job>/<run id>.log` that takes both from the path.
fn builds_config(env: &Env) -> std::path::PathBuf {
    fs::create_dir_all(env.logs().join("builds/deploy")).unwrap();
    env.config_with(Config {
        globs: &["builds/*/*.log"],
        source_extra: r#"ci_run_id_from_path = '/builds/(?P<job>[^/]+)/(?P<ci_run_id>\d+)\.log$'"#,
        ..Config::default()
    })
}

#[test]
fn run_id_from_path() {
    let env = Env::new();
    let config = builds_config(&env);
    env.append("builds/deploy/42.log", "step one\nstep two ci_run_id=7\n");
    let agent = env.start(&config);
    let events = env.wait_for_events(2, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        run_ids(&events),
        [Some("42"), Some("7")],
        "the line's own id wins"
    );
    assert!(
        events.iter().all(|e| e["fields"]["job"] == "deploy"),
        "{events:#?}"
    );
}

#[test]
fn sticky_marker_tags_following_lines() {
    let env = Env::new();
    let config = with_markers(&env, "");
    env.append(
        "app.log",
        "before any run\n\
=== run 5 on runner-a ===\n\
compiling\n\
ERROR test failed\n\
=== run finished: failure\n\
after the run\n\
=== run 6 on runner-b ===\n\
ERROR again\n",
    );
    let agent = env.start(&config);
    let events = env.wait_for_events(8, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        run_ids(&events),
        [
            None,
            Some("5"),
            Some("5"),
            Some("5"),
            Some("5"),
            None,
            Some("6"),
            Some("6")
        ],
        "{events:#?}"
    );
    assert_eq!(
        events[3]["fields"]["runner"], "runner-a",
        "captured fields stick too"
    );
    assert_eq!(
        events[7]["fields"]["runner"], "runner-b",
        "a new marker replaces them"
    );
    assert!(
        events[5]["fields"].get("runner").is_none(),
        "the end marker clears them"
    );
}

#[test]
fn sticky_context_survives_restart() {
    let env = Env::new();
    let config = with_markers(&env, "");
    env.append("app.log", "=== run 77 on runner-a ===\nfirst step\n");
    let agent = env.start(&config);
    env.wait_for_events(2, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    let positions = fs::read_to_string(env.path("state/positions.json")).unwrap();
    assert!(positions.contains("\"ci_run_id\": \"77\""), "{positions}");

    env.append("app.log", "second step\nERROR boom\n");
    let agent = env.start(&config);
    let events = env.wait_for_events(4, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        run_ids(&events[2..]),
        [Some("77"), Some("77")],
        "{events:#?}"
    );
    assert_eq!(events[3]["fields"]["runner"], "runner-a");
}

#[test]
fn k8s_pod_path_gives_metadata() {
    let env = Env::new();
    let dir = "pods/ci_builder-7d9f_0f6a1c2e-1b2c-4d5e-8f90-a1b2c3d4e5f6/runner";
    fs::create_dir_all(env.logs().join(dir)).unwrap();
    let config = env.config_with(Config {
        globs: &["pods/*/*/*.log"],
        ..Config::default()
    });
    env.append(
        &format!("{dir}/0.log"),
        "2026-11-22T10:00:00.000000001Z stdout F build started\n",
    );
    let agent = env.start(&config);
    let events = env.wait_for_events(1, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    let fields = &events[0]["fields"];
    assert_eq!(fields["namespace"], "ci");
    assert_eq!(fields["pod"], "builder-7d9f");
    assert_eq!(fields["container"], "runner");
    assert_eq!(fields["stream"], "stdout");
    assert_eq!(events[0]["line"], "build started");
}

#[test]
fn replay_with_a_config_takes_the_sources_path_rule() {
    let env = Env::new();
    let config = builds_config(&env);
    let log = env.logs().join("builds/deploy/42.log");
    fs::write(&log, "step one\n").unwrap();
    let out = common::run_to_exit(
        &[
            "replay",
            "-c",
            config.to_str().unwrap(),
            log.to_str().unwrap(),
        ],
        &[],
        b"",
    );
    assert!(out.status.success(), "{}", out.all_output());
    let ev: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(ev["ci_run_id"], "42");
    assert_eq!(ev["fields"]["job"], "deploy");
}

#[test]
fn truncation_ends_the_sticky_context() {
    let env = Env::new();
    let config = with_markers(&env, "");
    env.append("app.log", "=== run 9 on runner-a ===\nstep one\n");
    let agent = env.start(&config);
    env.wait_for_events(2, &agent);
    // The file starts over (a new run's log written in place of the old one).
    fs::write(env.logs().join("app.log"), "fresh start\n").unwrap();
    let events = env.wait_for_events(3, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        run_ids(&events),
        [Some("9"), Some("9"), None],
        "{events:#?}"
    );
}
