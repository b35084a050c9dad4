//! Input that would break a naive agent: lines far beyond `max_line_bytes`,
//! bytes that are not UTF-8, JSON that does not parse. Nothing is dropped and
//! nothing is held in memory beyond the limit.

mod common;

use std::fs::OpenOptions;
use std::io::Write;

use common::{
    Config, Env, free_addr, http_table, line_offsets, metric, tail_once, wait_ready, wait_until,
};
use serde_json::Value;

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmHWM in /proc/<pid>/status")
}

fn field<'a>(event: &'a Value, name: &str) -> Option<&'a Value> {
    event["fields"].get(name)
}

#[test]
fn ten_megabyte_line_is_cut_not_buffered() {
    const LIMIT: usize = 64 * 1024;
    const LONG: usize = 10 << 20;
    const CHUNK: usize = 256 * 1024;
    const BYTES_READ: &str = r#"logward_bytes_read_total{source="test"}"#;
    let env = Env::new();
    let addr = free_addr();
    let config = env.config_with(Config {
        source_extra: r#"max_line_bytes = "64KiB""#,
        top_extra: &http_table(addr),
        ..Config::default()
    });
    env.append("app.log", "before\n");
    let agent = env.start(&config);
    env.wait_for_events(1, &agent);
    // Warm up the metrics endpoint that is polled below, then take the baseline.
    metric(&agent, addr, BYTES_READ);
    let baseline = peak_rss(agent.pid());

    // The long line arrives in pieces; each is read before the next is written,
    // so the agent sees the line grow far past its limit without its newline.
    let mut log = OpenOptions::new()
        .append(true)
        .open(env.logs().join("app.log"))
        .expect("open log");
    let mut written = "before\n".len();
    let piece: Vec<u8> = (0..CHUNK).map(|i| b'a' + (i % 26) as u8).collect();
    for _ in 0..LONG / CHUNK {
        log.write_all(&piece).expect("write piece");
        written += CHUNK;
        wait_until(
            &format!("the agent to read {written} bytes"),
            &agent,
            || {
                let read = metric(&agent, addr, BYTES_READ);
                (read >= written as f64).then_some(())
            },
        );
    }
    log.write_all(b"\nafter the long line\n")
        .expect("write end");
    env.wait_for_events(3, &agent);
    let peak = peak_rss(agent.pid());
    let truncated_lines = metric(
        &agent,
        addr,
        r#"logward_lines_truncated_total{source="test"}"#,
    );
    let (status, stderr) = agent.stop();

    assert!(status.success(), "exit {status}\n{stderr}");
    let events = env.events();
    assert_eq!(events.len(), 3, "{stderr}");
    let long = &events[1];
    let line = long["line"].as_str().expect("line");
    assert_eq!(
        line.len(),
        LIMIT,
        "the long line keeps exactly its first 64 KiB"
    );
    assert_eq!(line.as_bytes(), &piece[..LIMIT]);
    assert_eq!(long["offset"], 7);
    assert_eq!(field(long, "truncated"), Some(&Value::Bool(true)));
    assert_eq!(events[2]["line"], "after the long line");
    assert_eq!(events[2]["offset"], 7 + LONG as u64 + 1);
    assert_eq!(field(&events[2], "truncated"), None);
    assert_eq!(truncated_lines, 1.0);
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth <= 4 << 20,
        "peak RSS grew by {} KiB while a 10 MiB line streamed past (baseline {} KiB, peak {} KiB)",
        growth >> 10,
        baseline >> 10,
        peak >> 10
    );
}

#[test]
fn flood_of_tiny_lines_keeps_memory_bounded() {
    // 64 KiB of two-byte lines is 32768 events per read: if batches grew with
    // reads, the pipeline would hold half a million events while delivery
    // catches up.
    const LINES: usize = 1_000_000;
    let env = Env::new();
    let config = env.config("");
    let agent = env.start(&config);
    wait_ready(&agent);
    let baseline = peak_rss(agent.pid());
    let flood: String = (0..LINES)
        .map(|i| format!("{}\n", (b'a' + (i % 26) as u8) as char))
        .collect();
    env.append("flood.log", &flood);
    env.wait_for_output_lines(LINES / 10, &agent);
    let peak = peak_rss(agent.pid());
    let (status, stderr) = agent.stop();
    assert!(status.success(), "exit {status}\n{stderr}");
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth <= 32 << 20,
        "peak RSS grew by {} MiB while a flood of tiny lines was delivered",
        growth >> 20
    );
}

#[test]
fn invalid_utf8_and_nul_are_kept() {
    let content: &[u8] = b"before\nbad \xff byte and \0 nul\nonly \0 nul\nafter\n";
    let events = tail_once("", content, 4);
    let offsets = line_offsets(content);
    let lines: Vec<&str> = events.iter().map(|e| e["line"].as_str().unwrap()).collect();
    assert_eq!(
        lines,
        [
            "before",
            "bad \u{fffd} byte and \u{0} nul",
            "only \u{0} nul",
            "after"
        ]
    );
    for (e, offset) in events.iter().zip(&offsets) {
        assert_eq!(e["offset"], *offset, "{e}");
    }
    assert_eq!(field(&events[1], "invalid_utf8"), Some(&Value::Bool(true)));
    for e in [&events[0], &events[2], &events[3]] {
        assert_eq!(
            field(e, "invalid_utf8"),
            None,
            "valid UTF-8 is not flagged: {e}"
        );
    }
}

#[test]
fn broken_json_line_becomes_text_event() {
    let input = [
        r#"{"level":"info","msg":"one"}"#,
        r#"{"level":"warn","msg":"two""#,
        "not json at all",
        "[1,2,3]",
        r#"{"level":"error","msg":"three"}"#,
    ];
    let content = input.map(|l| format!("{l}\n")).concat();
    let events = tail_once(r#"format = "json""#, content.as_bytes(), input.len());
    let offsets = line_offsets(content.as_bytes());
    for ((e, raw), offset) in events.iter().zip(input).zip(&offsets) {
        assert_eq!(e["line"], raw, "the line is the raw text: {e}");
        assert_eq!(e["offset"], *offset, "{e}");
    }
    for e in [&events[0], &events[4]] {
        assert_eq!(field(e, "json_error"), None, "valid JSON has no error: {e}");
    }
    for e in &events[1..4] {
        let error = field(e, "json_error").and_then(Value::as_str);
        assert!(error.is_some_and(|m| !m.is_empty()), "no json_error: {e}");
    }
    assert!(
        field(&events[3], "json_error")
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains("not a JSON object")),
        "{}",
        events[3]
    );
}
