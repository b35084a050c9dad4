//! Multiline records through `logward run`: stack traces are one event, held
//! records time out, runaway records are cut, a restart in the middle of a
//! record re-reads it whole, and files never mix.

mod common;

use std::fs;

use common::{Config, Env, wait_until};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/multiline/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn line(ev: &Value) -> &str {
    ev["line"].as_str().unwrap_or_default()
}

/// Runs the agent on `text` as `logs/app.log` until `n` events are out and
/// returns them, exactly `n`.
fn events_of(text: &str, n: usize, source_extra: &str) -> Vec<Value> {
    common::tail_once(source_extra, text.as_bytes(), n)
}

/// The record of `events` whose line contains `needle`.
fn record_with<'a>(events: &'a [Value], needle: &str) -> &'a Value {
    events
        .iter()
        .find(|e| line(e).contains(needle))
        .unwrap_or_else(|| panic!("no event contains {needle:?}: {events:#?}"))
}

#[test]
fn java_trace_is_one_event() {
    let text = "2026-11-22 10:00:00.001 INFO  [main] c.e.App - starting\n\
2026-11-22 10:00:01.002 ERROR [http-1] c.e.Handler - request failed\n\
java.lang.IllegalStateException: order 4711 is closed\n\
\tat com.example.Orders.close(Orders.java:42)\n\
\tat com.example.Handler.handle(Handler.java:17)\n\
Caused by: java.io.IOException: disk full\n\
\tat com.example.Store.write(Store.java:88)\n\
\t... 2 more\n\
2026-11-22 10:00:02.003 INFO  [main] c.e.App - next request\n";
    let events = events_of(text, 3, "");
    let trace = record_with(&events, "request failed");
    assert_eq!(
        line(trace).lines().count(),
        7,
        "message line, header, frames, cause, `... 2 more`: {trace:#}"
    );
    assert!(line(trace).ends_with("\t... 2 more"));
    assert_eq!(
        trace["offset"], 56,
        "the record's offset is its first line's"
    );
    assert_eq!(trace["level"], "error");
    assert_eq!(
        line(&events[2]),
        "2026-11-22 10:00:02.003 INFO  [main] c.e.App - next request"
    );
}

#[test]
fn python_chained_traceback_is_one_event() {
    // Lines joined explicitly: a `\` line continuation would eat their indentation.
    let text = [
        "worker starting",
        "Traceback (most recent call last):",
        "  File \"/app/worker.py\", line 12, in load",
        "    return int(raw)",
        "ValueError: invalid literal for int() with base 10: 'abc'",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        "  File \"/app/worker.py\", line 20, in <module>",
        "    load()",
        "RuntimeError: cannot load config",
        "worker stopped",
        "",
    ]
    .join("\n");
    let events = events_of(&text, 3, "");
    let trace = &events[1];
    assert!(line(trace).starts_with("Traceback (most recent call last):"));
    assert!(
        line(trace).ends_with("RuntimeError: cannot load config"),
        "{trace:#}"
    );
    assert!(line(trace).contains("\n\nDuring handling of the above exception"));
    assert_eq!(trace["level"], "error");
    assert_eq!(line(&events[2]), "worker stopped");
}

#[test]
fn go_panic_goroutines_are_one_event() {
    let text = "2026/11/22 10:00:00 listening on :8080\n\
panic: runtime error: index out of range [5] with length 3\n\
\n\
goroutine 7 [running]:\n\
main.handle(0xc000012345, 0x5)\n\
\t/app/main.go:42 +0x1d\n\
created by main.serve in goroutine 1\n\
\t/app/main.go:30 +0x85\n\
\n\
goroutine 1 [IO wait]:\n\
internal/poll.runtime_pollWait(0x7f, 0x72)\n\
\t/usr/local/go/src/runtime/netpoll.go:343 +0x85\n\
exit status 2\n";
    let events = events_of(text, 2, "");
    let panic = &events[1];
    assert!(line(panic).starts_with("panic: runtime error"));
    assert!(line(panic).contains("goroutine 1 [IO wait]:"), "{panic:#}");
    assert_eq!(panic["level"], "critical");
}

#[test]
fn trace_at_end_of_file_flushes_after_timeout() {
    // No line follows the trace: it may still grow, and goes out after the timeout.
    let text = "starting\njava.lang.NullPointerException: boom\n\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)\n";
    let events = events_of(text, 2, "");
    assert_eq!(line(&events[1]).lines().count(), 3, "{events:#?}");
}

#[test]
fn max_lines_cuts_runaway_record() {
    let mut text = String::from("begin\n");
    for i in 0..12 {
        text.push_str(&format!("  more {i}\n"));
    }
    text.push_str("end\n");
    let events = events_of(
        &text,
        4,
        "multiline = { start = '^\\S', max_lines = 5, timeout = \"200ms\" }",
    );
    let counts: Vec<usize> = events.iter().map(|e| line(e).lines().count()).collect();
    assert_eq!(counts, [5, 5, 3, 1]);
    let cut: Vec<bool> = events
        .iter()
        .map(|e| e["fields"]["multiline_cut"] == true)
        .collect();
    assert_eq!(cut, [true, true, false, false]);
}

#[test]
fn restart_mid_trace_emits_it_once() {
    let env = Env::new();
    // A long timeout: the record stays held while the agent is stopped and restarted.
    let config = env.config_with(Config {
        source_extra: "multiline = { start = '^\\S', timeout = \"1h\" }",
        ..Config::default()
    });
    env.append("app.log", "first\n  a1\n  a2\nsecond\n  b1\n");
    let agent = env.start(&config);
    env.wait_for_events(1, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        env.lines(),
        ["first\n  a1\n  a2"],
        "the held record is not out"
    );

    env.append("app.log", "  b2\nthird\n");
    let agent = env.start(&config);
    env.wait_for_events(2, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        env.lines(),
        ["first\n  a1\n  a2", "second\n  b1\n  b2"],
        "the second record once and whole"
    );

    let agent = env.start(&config);
    common::wait_ready(&agent);
    let (status, _) = agent.stop();
    assert!(status.success());
    assert_eq!(
        env.events().len(),
        2,
        "nothing re-read after a clean restart"
    );
}

#[test]
fn restart_after_kill_9_mid_trace_emits_it_once() {
    let env = Env::new();
    let config = env.config_with(Config {
        source_extra: "multiline = { start = '^\\S', timeout = \"1h\" }",
        ..Config::default()
    });
    env.append("app.log", "first\n  a1\nsecond\n  b1\n");
    let agent = env.start(&config);
    env.wait_for_events(1, &agent);
    // The position is saved every 100ms: wait until it covers the first record.
    let positions = env.path("state/positions.json");
    wait_until("the first record's position saved", &agent, || {
        let text = fs::read_to_string(&positions).ok()?;
        text.contains("\"offset\": 11").then_some(())
    });
    agent.kill9();
    env.append("app.log", "  b2\nthird\n");
    let agent = env.start(&config);
    env.wait_for_events(2, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(env.lines(), ["first\n  a1", "second\n  b1\n  b2"]);
}

#[test]
fn interleaved_files_do_not_mix() {
    let env = Env::new();
    let config = env.config("");
    env.append("a.log", "a: starting\n");
    env.append("b.log", "b: starting\n");
    let agent = env.start(&config);
    env.wait_for_events(2, &agent);
    let a_trace = [
        "java.lang.IllegalStateException: in a",
        "\tat a.A.one(A.java:1)",
        "\tat a.A.two(A.java:2)",
    ];
    let b_trace = [
        "java.lang.IllegalArgumentException: in b",
        "\tat b.B.one(B.java:1)",
        "\tat b.B.two(B.java:2)",
    ];
    for (a, b) in a_trace.iter().zip(&b_trace) {
        env.append("a.log", &format!("{a}\n"));
        env.append("b.log", &format!("{b}\n"));
        std::thread::sleep(std::time::Duration::from_millis(60));
    }
    env.append("a.log", "a: done\n");
    env.append("b.log", "b: done\n");
    let events = env.wait_for_events(6, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    for (file, trace) in [("a.log", a_trace), ("b.log", b_trace)] {
        let joined: Vec<&Value> = events
            .iter()
            .filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with(file)))
            .filter(|e| line(e).contains("Exception"))
            .collect();
        assert_eq!(joined.len(), 1, "{file}: {events:#?}");
        assert_eq!(line(joined[0]), trace.join("\n"));
    }
    assert_eq!(env.events().len(), 6);
}

#[test]
fn every_fixture_joins_as_expected() {
    let dir = format!("{}/tests/fixtures/multiline", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "log") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let expect = fixture(&name.replace(".log", ".expect"));
        let want = expected_line_counts(&expect);
        let out = common::run_to_exit(&["replay", path.to_str().unwrap()], &[], b"");
        let got: Vec<usize> = out
            .stdout
            .lines()
            .map(|l| {
                let ev: Value = serde_json::from_str(l).unwrap();
                line(&ev).lines().count()
            })
            .collect();
        assert_eq!(got, want, "{name}\n{}", out.stderr);
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} fixtures in {dir}");
}

/// The line count of each expected record, from a fixture's `.expect` file.
fn expected_line_counts(expect: &str) -> Vec<usize> {
    expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad expect line {l:?}"))
        })
        .collect()
}

#[test]
fn a_patterns_multiline_rule_joins_the_records_it_starts() {
    let env = Env::new();
    // A block format no built-in rule knows: `BEGIN` lines, indented with `|`.
    env.write(
        "blocks.toml",
        r#"
[[pattern]]
id        = "test.block"
regex     = '^BEGIN (?P<message>.*)'
level     = "error"
multiline = { continue = '^\|', timeout = "200ms" }
"#,
    );
    let log = env.write(
        "logs/app.log",
        "plain line\nBEGIN report\n| one\n| two\n| three\nafter\n| not part of a block\n",
    );
    let out = common::run_to_exit(
        &[
            "replay",
            "-p",
            env.path("blocks.toml").to_str().unwrap(),
            log.to_str().unwrap(),
        ],
        &[],
        b"",
    );
    assert!(out.status.success(), "{}", out.all_output());
    let lines: Vec<String> = out
        .stdout
        .lines()
        .map(|l| {
            let ev: Value = serde_json::from_str(l).unwrap();
            line(&ev).to_string()
        })
        .collect();
    assert_eq!(
        lines,
        [
            "plain line",
            "BEGIN report\n| one\n| two\n| three",
            "after",
            "| not part of a block"
        ]
    );
}
