//! The bundled library on sample logs of every format it covers: each line of
//! `tests/fixtures/formats/X.log` must give the level, service and run id that
//! `X.expect.jsonl` states for it.

mod common;

use std::fs;
use std::path::Path;

use serde_json::Value;

const CORPORA: &str = "tests/fixtures/formats";
const KEYS: [&str; 3] = ["level", "service", "ci_run_id"];

#[test]
fn every_sample_log_extracts_level_service_and_run_id() {
    let mut corpora: Vec<_> = fs::read_dir(CORPORA)
        .expect("corpora directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    corpora.sort();
    assert!(corpora.len() >= 30, "{} corpora", corpora.len());
    let (mut records, mut wrong) = (0, Vec::new());
    for log in &corpora {
        let expected = expectations(&log.with_extension("expect.jsonl"));
        let events = replay(log);
        assert_eq!(
            events.len(),
            expected.len(),
            "{}: one event per line",
            log.display()
        );
        for (i, (ev, want)) in events.iter().zip(&expected).enumerate() {
            records += 1;
            for key in KEYS {
                if ev[key] != want[key] {
                    wrong.push(format!(
                        "{}:{}: {key}: expected {}, got {} (pattern {})",
                        log.display(),
                        i + 1,
                        want[key],
                        ev[key],
                        ev["pattern"]
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {records} records wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn expectations(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("expectation is JSON"))
        .collect()
}

fn replay(log: &Path) -> Vec<Value> {
    let run = common::run_to_exit(
        &[
            "replay",
            "-p",
            "patterns",
            "--format",
            "text",
            // The corpora are samples of lines, one per pattern: none is part of another.
            "--multiline",
            "none",
            &log.to_string_lossy(),
        ],
        &[],
        b"",
    );
    assert!(run.status.success(), "{}", run.stderr);
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("event is JSON"))
        .collect()
}
