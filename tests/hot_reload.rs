//! Hot reload of pattern files in a running agent: on change and on SIGHUP,
//! swapped whole between batches, and never for an invalid set.

mod common;

use std::collections::HashSet;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{
    Agent, Config, Env, free_addr, http_get, http_table, numbered, sample, wait_ready, wait_until,
};

const SUCCESS: &str = "logward_config_reloads_total{result=\"success\"}";
const FAILURE: &str = "logward_config_reloads_total{result=\"failure\"}";

/// A pattern file with one pattern, `id`, that matches the test's lines.
fn pattern_file(id: &str) -> String {
    format!("[[pattern]]\nid = \"{id}\"\nregex = '^line-(?P<n>\\d+)'\nlevel = \"info\"\n")
}

/// An agent tailing `logs/*.log` with the patterns in `pats/`, and its metrics address.
fn start(env: &Env, first_id: &str) -> (Agent, SocketAddr, PathBuf) {
    let dir = env.path("pats");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.toml");
    fs::write(&file, pattern_file(first_id)).unwrap();
    let addr = free_addr();
    let top = format!("patterns = [\"{}\"]\n{}", dir.display(), http_table(addr));
    let agent = env.start(&env.config_with(Config {
        top_extra: &top,
        ..Config::default()
    }));
    wait_ready(&agent);
    (agent, addr, file)
}

fn reloads(agent: &Agent, addr: SocketAddr, series: &str, at_least: f64) {
    wait_until(&format!("{series} >= {at_least}"), agent, || {
        let (_, body) = http_get(addr, "/metrics").ok()?;
        (sample(&body, series)? >= at_least).then_some(())
    });
}

fn pattern_of_line(env: &Env, agent: &Agent, line: &str) -> Option<String> {
    let events = wait_until(&format!("event for {line}"), agent, || {
        let events = env.events();
        events.iter().any(|e| e["line"] == line).then_some(events)
    });
    let ev = events.into_iter().find(|e| e["line"] == line)?;
    ev["pattern"].as_str().map(str::to_string)
}

#[test]
fn sighup_reloads() {
    let env = Env::new();
    let (agent, addr, _) = start(&env, "v1");
    common::signal(agent.pid(), libc::SIGHUP);
    reloads(&agent, addr, SUCCESS, 1.0);
    env.append("a.log", "line-1\n");
    assert_eq!(
        pattern_of_line(&env, &agent, "line-1").as_deref(),
        Some("v1")
    );
    let (status, err) = agent.stop();
    assert!(status.success(), "{err}");
    assert!(err.contains("SIGHUP: reloading patterns"), "{err}");
}

#[test]
fn hot_reload_keeps_previous_set_on_error() {
    let env = Env::new();
    let (agent, addr, file) = start(&env, "v1");
    fs::write(
        &file,
        "[[pattern]]\nid = \"v2\"\nregex = 'unclosed (group'\n",
    )
    .unwrap();
    reloads(&agent, addr, FAILURE, 1.0);
    env.append("a.log", "line-1\n");
    assert_eq!(
        pattern_of_line(&env, &agent, "line-1").as_deref(),
        Some("v1"),
        "the previous set keeps running"
    );

    fs::write(&file, pattern_file("v3")).unwrap();
    reloads(&agent, addr, SUCCESS, 1.0);
    env.append("a.log", "line-2\n");
    assert_eq!(
        pattern_of_line(&env, &agent, "line-2").as_deref(),
        Some("v3")
    );
    let (status, err) = agent.stop();
    assert!(status.success());
    assert!(
        err.contains(&format!("{}:3:9: invalid regex", file.display())),
        "the error names file:line:col:\n{err}"
    );
}

#[test]
fn hot_reload_swaps_without_losing_lines() {
    let env = Env::new();
    let (agent, addr, file) = start(&env, "v0");
    let reloaded = AtomicBool::new(false);
    // The writer runs until every reload is done, then writes one chunk more.
    let written = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut chunk = 0;
            loop {
                let last = reloaded.load(Ordering::Acquire);
                env.append("a.log", &numbered("line", chunk * 250, (chunk + 1) * 250));
                chunk += 1;
                if last {
                    return chunk * 250;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        });
        for version in 1..=4 {
            fs::write(&file, pattern_file(&format!("v{version}"))).unwrap();
            reloads(&agent, addr, SUCCESS, f64::from(version));
        }
        reloaded.store(true, Ordering::Release);
        writer.join().expect("writer")
    });
    let events = env.wait_for_events(written, &agent);
    let (status, err) = agent.stop();
    assert!(status.success(), "{err}");
    assert_eq!(events.len(), written, "every line once");
    let lines: HashSet<&str> = events.iter().filter_map(|e| e["line"].as_str()).collect();
    assert_eq!(lines.len(), written, "no line twice");
    let versions: Vec<u32> = events
        .iter()
        .map(|e| {
            let id = e["pattern"]
                .as_str()
                .unwrap_or_else(|| panic!("unmatched across a swap: {e}"));
            id[1..].parse().unwrap_or(u32::MAX)
        })
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "a line went through an older set after a newer one"
    );
    assert_eq!(versions.last(), Some(&4));
}

#[test]
fn changes_that_need_a_restart_are_reported_and_patterns_still_reload() {
    let env = Env::new();
    let (agent, addr, file) = start(&env, "v1");
    let config = env.path("logward.toml");
    let text = fs::read_to_string(&config).unwrap();
    let moved = text.replacen("state_dir = \"", "state_dir = \"/tmp/elsewhere-", 1);
    assert_ne!(text, moved, "the config names a state_dir");
    fs::write(&config, moved).unwrap();
    fs::write(&file, pattern_file("v2")).unwrap();
    reloads(&agent, addr, SUCCESS, 1.0);
    env.append("a.log", "line-1\n");
    assert_eq!(
        pattern_of_line(&env, &agent, "line-1").as_deref(),
        Some("v2")
    );
    let (status, err) = agent.stop();
    assert!(status.success(), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("takes effect at the next restart") && l.contains("state_dir")),
        "{err}"
    );
    assert!(
        env.path("state/positions.json").exists(),
        "the running state_dir stays in use"
    );
}
