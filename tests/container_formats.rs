//! Container runtime log files: CRI (containerd, CRI-O) and docker json-file.
//! Records the runtime split are joined again, per stream, with the runtime's
//! timestamp and the byte offset of their first part.

mod common;

use common::{line_offsets, tail_once, wait_ready};
use serde_json::{Value, json};

/// A CRI log line: `<time> <stream> <P|F> <message>`.
fn cri(ts: &str, stream: &str, tag: &str, msg: &str) -> String {
    format!("{ts} {stream} {tag} {msg}\n")
}

/// A docker json-file log line.
fn docker(log: &str, stream: &str, time: &str) -> String {
    format!(
        "{}\n",
        json!({ "log": log, "stream": stream, "time": time })
    )
}

/// `(line, stream, ts, offset)` of each event, for whole-sequence comparisons.
fn summary(events: &[Value]) -> Vec<(String, String, String, u64)> {
    events
        .iter()
        .map(|e| {
            (
                e["line"].as_str().unwrap_or_default().to_string(),
                e["fields"]["stream"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["ts"].as_str().unwrap_or_default().to_string(),
                e["offset"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

fn row(line: &str, stream: &str, ts: &str, offset: u64) -> (String, String, String, u64) {
    (line.into(), stream.into(), ts.into(), offset)
}

#[test]
fn cri_partial_lines_are_joined() {
    let content = [
        cri("2024-05-01T10:00:00.000000001Z", "stdout", "P", "hel"),
        cri("2024-05-01T10:00:00.000000002Z", "stderr", "P", "oo"),
        cri("2024-05-01T10:00:00.000000003Z", "stdout", "P", "lo wor"),
        cri("2024-05-01T10:00:00.000000004Z", "stderr", "F", "ps"),
        cri("2024-05-01T10:00:00.000000005Z", "stdout", "F", "ld"),
        cri("2024-05-01T10:00:01.5+02:00", "stdout", "F", "whole line"),
    ]
    .concat();
    let at = line_offsets(content.as_bytes());
    let events = tail_once(r#"format = "cri""#, content.as_bytes(), 3);
    assert_eq!(
        summary(&events),
        [
            row("oops", "stderr", "2024-05-01T10:00:00.000000002Z", at[1]),
            row(
                "hello world",
                "stdout",
                "2024-05-01T10:00:00.000000001Z",
                at[0]
            ),
            row("whole line", "stdout", "2024-05-01T08:00:01.500Z", at[5]),
        ]
    );
    for e in &events {
        assert_eq!(e["fields"].get("partial"), None, "complete record: {e}");
    }
}

#[test]
fn docker_split_lines_are_joined() {
    const SPLIT: usize = 16 * 1024;
    // 40 KB with characters that JSON escapes, so the split falls between escapes.
    let message: String = (0..40_000)
        .map(|i| match i % 50 {
            0 => '"',
            1 => '\\',
            2 => '\t',
            _ => char::from(b'a' + (i % 26) as u8),
        })
        .collect();
    let (one, rest) = message.split_at(SPLIT);
    let (two, three) = rest.split_at(SPLIT);
    let content = [
        docker(one, "stdout", "2024-05-01T10:00:00.000000001Z"),
        docker("err\n", "stderr", "2024-05-01T10:00:00.000000002Z"),
        docker(two, "stdout", "2024-05-01T10:00:00.000000003Z"),
        docker(
            &format!("{three}\n"),
            "stdout",
            "2024-05-01T10:00:00.000000004Z",
        ),
        docker("next\n", "stdout", "2024-05-01T10:00:00.000000005Z"),
    ]
    .concat();
    let at = line_offsets(content.as_bytes());
    let events = tail_once(r#"format = "auto""#, content.as_bytes(), 3);
    assert_eq!(
        summary(&events),
        [
            row("err", "stderr", "2024-05-01T10:00:00.000000002Z", at[1]),
            row(&message, "stdout", "2024-05-01T10:00:00.000000001Z", at[0]),
            row("next", "stdout", "2024-05-01T10:00:00.000000005Z", at[4]),
        ],
        "docker json-file was not detected or not joined"
    );
}

#[test]
fn auto_detects_cri() {
    let content = [
        cri(
            "2024-05-01T10:00:00Z",
            "stdout",
            "F",
            r#"{"msg":"json inside"}"#,
        ),
        cri("2024-05-01T10:00:01Z", "stderr", "F", "plain text"),
        cri("2024-05-01T10:00:02Z", "stdout", "P", "joined "),
        cri("2024-05-01T10:00:03Z", "stdout", "F", "too"),
    ]
    .concat();
    let at = line_offsets(content.as_bytes());
    let events = tail_once("", content.as_bytes(), 3);
    assert_eq!(
        summary(&events),
        [
            row(
                r#"{"msg":"json inside"}"#,
                "stdout",
                "2024-05-01T10:00:00Z",
                at[0]
            ),
            row("plain text", "stderr", "2024-05-01T10:00:01Z", at[1]),
            row("joined too", "stdout", "2024-05-01T10:00:02Z", at[2]),
        ],
        "CRI was not detected"
    );
}

#[test]
fn unfinished_cri_record_goes_out_when_its_file_is_rotated_away() {
    // The runtime died after a `P` line: nothing will finish it.
    let content = cri("2024-05-01T10:00:00Z", "stdout", "P", "cut short");
    let env = common::Env::new();
    let path = env.logs().join("app.log");
    std::fs::write(&path, &content).expect("write log");
    let agent = env.start(&env.config(r#"format = "cri""#));
    wait_ready(&agent);
    std::fs::rename(&path, env.logs().join("app.log.1")).expect("rotate");
    let events = env.wait_for_events(1, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(events[0]["line"], "cut short");
    assert_eq!(events[0]["fields"]["partial"], Value::Bool(true));
    assert_eq!(events[0]["offset"], 0);
}
