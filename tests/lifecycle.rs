//! The agent's life: it ends by itself when its only input (stdin) ends,
//! drains and saves its positions on SIGTERM, and serves /health, /ready and
//! /metrics while it runs.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::{
    Config, Env, free_addr, http_get, http_table, metric, numbered, run_to_exit, sample, wait_until,
};

/// A config whose only source is stdin, writing to the env's output file.
fn stdin_config(env: &Env) -> PathBuf {
    let text = format!(
        "state_dir = \"{}\"\n\n[[source]]\nname = \"in\"\ntype = \"stdin\"\n\n[output.file]\npath = \"{}\"\n",
        env.path("state").display(),
        env.out().display()
    );
    env.write("stdin.toml", &text)
}

/// The `line` of every event in the output, parsing nothing else: faster than
/// `Env::lines` for hundreds of thousands of events.
fn delivered_lines(env: &Env) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Line {
        line: String,
    }
    let text = std::fs::read_to_string(env.out()).unwrap_or_default();
    text.lines()
        .map(|l| {
            serde_json::from_str::<Line>(l)
                .unwrap_or_else(|e| panic!("not an event ({e}): {l}"))
                .line
        })
        .collect()
}

/// Lines that occur more than once, with their counts.
fn duplicates(lines: &[String]) -> HashMap<&str, usize> {
    let mut seen = HashMap::new();
    for l in lines {
        *seen.entry(l.as_str()).or_insert(0) += 1;
    }
    seen.retain(|_, n| *n > 1);
    seen
}

#[test]
fn stdin_eof_flushes_everything() {
    let env = Env::new();
    let config = stdin_config(&env);
    let mut input = numbered("line", 0, 20_000);
    input.push_str("the last line has no newline");
    let run = run_to_exit(
        &["run", "-c", config.to_str().unwrap()],
        &[],
        input.as_bytes(),
    );
    assert!(
        run.status.success(),
        "agent exited with {} at EOF\n{}",
        run.status,
        run.stderr
    );
    let events = env.events();
    let lines: Vec<&str> = events.iter().map(|e| e["line"].as_str().unwrap()).collect();
    let expected: Vec<&str> = input.split('\n').collect();
    assert_eq!(lines.len(), expected.len(), "{}", run.stderr);
    assert_eq!(lines, expected);
    let last = events.last().unwrap();
    assert_eq!(last["offset"], 20_000 * "line-000000\n".len());
    assert_eq!(
        (&last["source"], &last["path"]),
        (&"in".into(), &"-".into())
    );
}

#[test]
fn stdin_lines_are_delivered_while_stdin_stays_open() {
    // Fewer lines than format detection samples, and no end of input: a
    // producer that is quiet for a while (`kubectl logs -f | logward run`).
    delivered_while_stdin_is_open(b"first\nsecond\nthird\n", &["first", "second", "third"]);
}

#[test]
fn a_trace_held_on_an_open_stdin_goes_out_after_its_timeout() {
    // Nothing follows the trace, and stdin stays open: the record is flushed
    // by its multiline timeout, not by the end of input.
    delivered_while_stdin_is_open(
        b"first\njava.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)\n",
        &[
            "first",
            "java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)",
        ],
    );
}

/// Writes `input` to the agent's stdin, keeps it open until the output's
/// lines are `expect`, then closes it and checks the agent exits 0.
fn delivered_while_stdin_is_open(input: &[u8], expect: &[&str]) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let env = Env::new();
    let config = stdin_config(&env);
    let stderr_path = env.path("agent.stderr");
    let mut child = Command::new(common::BIN)
        .args(["run", "-c", config.to_str().unwrap()])
        .env("LOGWARD_LOG", "logward=debug,info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start logward");
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    stdin.flush().expect("flush stdin");
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while env.lines() != expect {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "lines written to an open stdin were not delivered: {:?}\n{}",
                env.lines(),
                stderr()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(stdin);
    let status = common::wait_timeout(&mut child, common::PATIENCE);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "exit at EOF: {status:?}\n{}",
        stderr()
    );
}

#[test]
fn sigterm_drains_and_exits_zero() {
    const TOTAL: usize = 200_000;
    let env = Env::new();
    let config = env.config("");
    let expected: Vec<String> = numbered("line", 0, TOTAL)
        .lines()
        .map(str::to_string)
        .collect();
    env.append("big.log", &numbered("line", 0, TOTAL));

    let agent = env.start(&config);
    env.wait_for_output_lines(1, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "SIGTERM exit: {status}\n{stderr}");
    let first = delivered_lines(&env);
    assert!(
        first.len() < TOTAL,
        "SIGTERM came after the whole file was delivered: nothing was left to drain"
    );
    assert_eq!(
        first[..],
        expected[..first.len()],
        "the first run delivered a prefix, in order, each line once\n{stderr}"
    );

    // The positions saved at shutdown are exactly what was delivered: the next
    // run starts right after it, so every line ends up there once.
    let agent = env.start(&config);
    env.wait_for_output_lines(TOTAL, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    let all = delivered_lines(&env);
    assert!(
        duplicates(&all).is_empty(),
        "first run delivered {} lines; duplicated after restart: {:?}",
        first.len(),
        duplicates(&all).into_iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(all, expected, "first run delivered {} lines", first.len());
}

#[test]
fn health_ready_and_metrics_are_served() {
    let env = Env::new();
    let addr = free_addr();
    let config = env.config_with(Config {
        top_extra: &http_table(addr),
        ..Config::default()
    });
    env.append("app.log", "one\ntwo\nthree\n");
    let agent = env.start(&config);

    let health = wait_until("/health", &agent, || http_get(addr, "/health").ok());
    assert_eq!(health.0, 200, "{health:?}");
    wait_until("/ready to answer 200", &agent, || {
        let (status, _) = http_get(addr, "/ready").ok()?;
        (status == 200).then_some(())
    });
    env.wait_for_events(3, &agent);
    let lines_read = r#"logward_lines_read_total{source="test"}"#;
    wait_until("3 lines read on /metrics", &agent, || {
        (metric(&agent, addr, lines_read) >= 3.0).then_some(())
    });
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    assert_eq!(sample(&body, lines_read), Some(3.0), "{body}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("logward_build_info{") && l.ends_with(" 1")),
        "{body}"
    );
    assert_eq!(http_get(addr, "/no-such-page").expect("GET").0, 404);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
}
