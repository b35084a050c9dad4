//! Pattern files through the `logward` binary: the bundled library, `test`,
//! `check`, `explain`, `replay -p`, level normalization and hot reload.

mod common;

use std::fs;
use std::path::Path;

use common::{Env, Finished, run_to_exit};
use serde_json::Value;

const GOOD: &str = "tests/fixtures/patterns/good";
const BAD: &str = "tests/fixtures/patterns/bad";

fn replay_with(patterns: &Path, input: &str) -> Vec<Value> {
    let p = patterns.to_string_lossy();
    let Finished {
        status,
        stdout: out,
        stderr: err,
    } = run_to_exit(
        &["replay", "-p", &p, "--format", "text", "-"],
        &[],
        input.as_bytes(),
    );
    assert!(status.success(), "replay failed: {err}");
    out.lines()
        .map(|l| serde_json::from_str(l).expect("event is JSON"))
        .collect()
}

#[test]
fn bundled_examples_all_pass() {
    let Finished {
        status,
        stdout: out,
        stderr: err,
    } = run_to_exit(&["test", "patterns"], &[], b"");
    assert!(status.success(), "bundled examples fail:\n{out}\n{err}");
    let last = out.lines().last().unwrap_or_default();
    let passed: usize = last
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(last.ends_with(", 0 failed") && passed >= 80, "{last}");
}

#[test]
fn every_bundled_pattern_has_a_winning_and_a_non_matching_example() {
    let mut patterns = 0;
    for entry in fs::read_dir("patterns").unwrap().flatten() {
        let path = entry.path();
        let doc: toml::Table = toml::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        for p in doc["pattern"].as_array().unwrap() {
            patterns += 1;
            let examples = p
                .get("example")
                .and_then(|e| e.as_array())
                .cloned()
                .unwrap_or_default();
            let id = p["id"].as_str().unwrap_or_default();
            let negative = examples
                .iter()
                .filter(|e| e.get("matches").and_then(|m| m.as_bool()) == Some(false))
                .count();
            assert!(
                negative >= 1,
                "{}: `{id}` has no `matches = false` example",
                path.display()
            );
            assert!(
                examples.len() > negative,
                "{}: `{id}` has no winning example",
                path.display()
            );
        }
    }
    assert!(patterns >= 40, "{patterns} bundled patterns");
}

#[test]
fn test_command_prints_counts() {
    let env = Env::new();
    let dir = env.path("pats");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(
        format!("{GOOD}/50-deployer.toml"),
        dir.join("50-deployer.toml"),
    )
    .unwrap();
    let Finished {
        status,
        stdout: out,
        ..
    } = run_to_exit(&["test", &dir.to_string_lossy()], &[], b"");
    assert!(status.success(), "{out}");
    assert_eq!(out.trim(), "6 passed, 0 failed");

    let broken = fs::read_to_string(dir.join("50-deployer.toml"))
        .unwrap()
        .replace("exit_code = \"3\"", "exit_code = \"4\"");
    fs::write(dir.join("50-deployer.toml"), broken).unwrap();
    let Finished {
        status,
        stdout: out,
        ..
    } = run_to_exit(&["test", &dir.to_string_lossy()], &[], b"");
    assert_eq!(status.code(), Some(1), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("50-deployer.toml:9: pattern `deployer.step-failed`"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(r#"exit_code: expected "4", got "3""#),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "5 passed, 1 failed");
}

#[test]
fn junit_output_is_valid_xml() {
    let env = Env::new();
    let junit = env.path("junit.xml");
    let Finished {
        status,
        stdout: out,
        ..
    } = run_to_exit(
        &["test", GOOD, "--junit", &junit.to_string_lossy()],
        &[],
        b"",
    );
    assert!(status.success(), "{out}");
    let xml = fs::read_to_string(&junit).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut depth) = (0, 0i32);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(e)) => {
                depth += 1;
                cases += usize::from(e.name().as_ref() == b"testcase");
            }
            Ok(quick_xml::events::Event::Empty(e)) => {
                cases += usize::from(e.name().as_ref() == b"testcase")
            }
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(_) => {}
            Err(e) => panic!("invalid XML at {}: {e}\n{xml}", reader.error_position()),
        }
    }
    assert_eq!((cases, depth), (6, 0), "{xml}");
    assert!(
        xml.contains(r#"<testsuite name="logward patterns" tests="6" failures="0">"#),
        "{xml}"
    );
}

#[test]
fn check_reports_every_error_with_location() {
    let env = Env::new();
    let config = env.path("c.toml");
    fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\npatterns = [\"{BAD}\"]\n",
            env.path("state").display()
        ),
    )
    .unwrap();
    let Finished {
        status,
        stdout: out,
        ..
    } = run_to_exit(&["check", "-c", &config.to_string_lossy()], &[], b"");
    assert_eq!(status.code(), Some(1), "{out}");
    let expected = [
        (
            format!("{BAD}/10-syntax.toml:1:"),
            "unclosed array table, expected `]`",
        ),
        (
            format!("{BAD}/20-mistakes.toml:6:1:"),
            "unknown key `regx` — did you mean `regex`?",
        ),
        (format!("{BAD}/20-mistakes.toml:10:"), "invalid regex"),
        (
            format!("{BAD}/20-mistakes.toml:14:"),
            "unknown def `%{NUMBER}` — did you mean `%{NUM}`?",
        ),
        (
            format!("{BAD}/20-mistakes.toml:18:"),
            "capture name `ExitCode` is not a lowercase identifier",
        ),
        (
            format!("{BAD}/20-mistakes.toml:23:"),
            "`loud` is not a level",
        ),
        (
            format!("{BAD}/20-mistakes.toml:32:"),
            "example expects `signal`, which pattern `bad.expect` cannot produce",
        ),
        (
            format!("{BAD}/20-mistakes.toml:41:11:"),
            "`context = \"start\"` of pattern `bad.context` is not true, false or \"end\"",
        ),
        (
            format!("{BAD}/20-mistakes.toml:46:13:"),
            "a JSON record is already whole — remove `multiline`",
        ),
        (
            format!("{BAD}/30-dup.toml:1:"),
            &format!("pattern id `dup.id` is already defined at {BAD}/20-mistakes.toml:34"),
        ),
    ];
    for (place, problem) in &expected {
        assert!(
            out.lines()
                .any(|l| l.starts_with(place.as_str()) && l.contains(problem)),
            "missing `{place} … {problem}` in:\n{out}"
        );
    }
    assert!(
        out.contains("regex parse error") && out.contains("unclosed group"),
        "the regex crate's message is shown:\n{out}"
    );
}

#[test]
fn duplicate_ids_name_both_files() {
    let env = Env::new();
    let dir = env.path("dups");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("a.toml"),
        "[[pattern]]\nid = \"same\"\nregex = 'a'\n",
    )
    .unwrap();
    fs::write(
        dir.join("b.toml"),
        "\n\n[[pattern]]\nid = \"same\"\nregex = 'b'\n",
    )
    .unwrap();
    let Finished {
        status,
        stdout: out,
        ..
    } = run_to_exit(&["test", &dir.to_string_lossy()], &[], b"");
    assert_eq!(status.code(), Some(1));
    let a = dir.join("a.toml");
    let b = dir.join("b.toml");
    assert!(
        out.contains(&format!(
            "{}:3:1: pattern id `same` is already defined at {}:1",
            b.display(),
            a.display()
        )),
        "{out}"
    );
}

#[test]
fn json_aliases_pick_first_present_field() {
    let events = replay_with(
        Path::new(GOOD),
        concat!(
            r#"{"level":"warn","lvl":"error","service":"svc-a","app":"app-b","msg":"m1","message":"m2","ci_run_id":"1","CI_RUN_ID":"2"}"#,
            "\n",
            r#"{"severity":"ERROR","kubernetes":{"labels":{"app":"nested"}},"message":"m3","run":{"id":42},"extra":true}"#,
            "\n",
        ),
    );
    assert_eq!(events.len(), 2);
    let (a, b) = (&events[0], &events[1]);
    assert_eq!(
        (
            a["level"].as_str(),
            a["service"].as_str(),
            a["message"].as_str(),
            a["ci_run_id"].as_str()
        ),
        (Some("warn"), Some("svc-a"), Some("m1"), Some("1"))
    );
    assert_eq!(
        (
            b["level"].as_str(),
            b["service"].as_str(),
            b["message"].as_str(),
            b["ci_run_id"].as_str()
        ),
        (Some("error"), Some("nested"), Some("m3"), Some("42"))
    );
    assert_eq!(b["pattern"], "json.app");
    assert_eq!(
        b["fields"]["extra"], true,
        "keys no alias took land in fields: {b}"
    );
    assert!(b["fields"].get("severity").is_none(), "{b}");
}

#[test]
fn level_forms_are_normalized() {
    let table = [
        ("TRACE", "trace"),
        ("trc", "trace"),
        ("FINEST", "trace"),
        ("T", "trace"),
        ("DEBUG", "debug"),
        ("dbg", "debug"),
        ("VERBOSE", "debug"),
        ("D", "debug"),
        ("V", "debug"),
        ("INFO", "info"),
        ("Information", "info"),
        ("informational", "info"),
        ("I", "info"),
        ("NOTICE", "notice"),
        ("N", "notice"),
        ("WARN", "warn"),
        ("Warning", "warn"),
        ("wrn", "warn"),
        ("W", "warn"),
        ("ERROR", "error"),
        ("err", "error"),
        ("SEVERE", "error"),
        ("E", "error"),
        ("FATAL", "critical"),
        ("PANIC", "critical"),
        ("DPANIC", "critical"),
        ("EMERG", "critical"),
        ("ALERT", "critical"),
        ("CRIT", "critical"),
        ("critical", "critical"),
        ("F", "critical"),
        ("10", "trace"),
        ("20", "debug"),
        ("30", "info"),
        ("40", "warn"),
        ("50", "error"),
        ("60", "critical"),
        ("0", "critical"),
        ("1", "critical"),
        ("2", "critical"),
        ("3", "error"),
        ("4", "warn"),
        ("5", "notice"),
        ("6", "info"),
        ("7", "debug"),
    ];
    let env = Env::new();
    let pats = env.path("levels.toml");
    fs::write(
        &pats,
        "[[pattern]]\nid = \"lvl\"\nregex = '^lvl=(?P<level>\\S+) (?P<message>.*)'\n",
    )
    .unwrap();
    let input: String = table
        .iter()
        .map(|(w, _)| format!("lvl={w} hello\n"))
        .chain(["lvl=LOUD hello\n".to_string()])
        .collect();
    let events = replay_with(&pats, &input);
    assert_eq!(events.len(), table.len() + 1);
    for ((written, want), ev) in table.iter().zip(&events) {
        assert_eq!(
            ev["level"].as_str(),
            Some(*want),
            "`{written}` gave {}",
            ev["level"]
        );
    }
    let unknown = &events[table.len()];
    assert_eq!(
        (
            unknown["level"].clone(),
            unknown["fields"]["level_raw"].as_str()
        ),
        (Value::Null, Some("LOUD")),
        "{unknown}"
    );
    let json_levels = replay_with(
        Path::new(GOOD),
        "{\"level\":30,\"msg\":\"pino\"}\n{\"level\":\"I\",\"msg\":\"klog\"}\n",
    );
    assert_eq!(
        (
            json_levels[0]["level"].as_str(),
            json_levels[1]["level"].as_str()
        ),
        (Some("info"), Some("info"))
    );
}

#[test]
fn explain_names_the_matching_pattern_and_why_others_failed() {
    let line = "2026-11-22 10:00:01 [deployer] FAILED step=migrate run=8812 exit=3";
    let Finished {
        status,
        stdout: out,
        stderr: err,
    } = run_to_exit(&["explain", "-p", GOOD, line], &[], b"");
    assert!(status.success(), "{err}");
    let row = |id: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id}:\n{out}"))
            .to_string()
    };
    assert!(row("deployer.step-failed").contains("MATCHED"), "{out}");
    assert!(
        row("deployer.any").contains("matches too, but a pattern earlier in the order won"),
        "{out}"
    );
    assert!(row("json.app").contains("not a JSON object"), "{out}");
    assert!(out.contains("match      `deployer.step-failed`"), "{out}");
    assert!(
        out.contains("level=error service=deployer ci_run_id=8812"),
        "{out}"
    );
    assert!(
        out.contains(r#""exit_code":"3""#) && out.contains(r#""step":"migrate""#),
        "{out}"
    );

    let Finished { stdout: out, .. } = run_to_exit(
        &["explain", "-p", GOOD],
        &[],
        b"2026-11-22 10:00:02 [deployer] WARN disk at 91%\n",
    );
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("deployer.step-failed")
                && l.contains("regex does not match")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("deployer.any") && l.contains("MATCHED")),
        "{out}"
    );
}

#[test]
fn replay_with_a_config_takes_the_matching_sources_settings_and_patterns() {
    let env = Env::new();
    let pats = env.path("pats.toml");
    fs::write(
        &pats,
        "[[pattern]]\nid = \"deploy.step\"\nregex = '^step (?P<step>\\w+) (?P<level>\\w+)$'\n",
    )
    .unwrap();
    let config = env.path("c.toml");
    fs::write(
        &config,
        format!(
            "state_dir = \"{state}\"\npatterns = [\"{pats}\"]\n\n[[source]]\nname = \"deploys\"\ntype = \"file\"\npaths = [\"{logs}/*.jsonl\"]\nformat = \"json\"\nlabels = {{ team = \"ci\" }}\n",
            state = env.path("state").display(),
            pats = pats.display(),
            logs = env.logs().display(),
        ),
    )
    .unwrap();
    let matching = env.logs().join("d.jsonl");
    fs::write(&matching, "{\"msg\":\"x\"}\nstep migrate error\n").unwrap();
    let other = env.path("other.log");
    fs::write(&other, "step migrate error\n").unwrap();
    let Finished {
        status,
        stdout,
        stderr,
    } = run_to_exit(
        &[
            "replay",
            "-c",
            &config.to_string_lossy(),
            &matching.to_string_lossy(),
            &other.to_string_lossy(),
        ],
        &[],
        b"",
    );
    assert!(status.success(), "{stderr}");
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 3, "{stdout}");
    let (json, broken, plain) = (&events[0], &events[1], &events[2]);
    assert_eq!(
        (json["source"].as_str(), json["labels"]["team"].as_str()),
        (Some("deploys"), Some("ci")),
        "{json}"
    );
    assert!(
        broken["fields"]["json_error"].is_string(),
        "the source's json format applies: {broken}"
    );
    assert_eq!(
        broken["pattern"], "deploy.step",
        "the config's patterns apply: {broken}"
    );
    assert_eq!(
        (broken["level"].as_str(), broken["fields"]["step"].as_str()),
        (Some("error"), Some("migrate"))
    );
    assert_eq!(
        (
            plain["source"].as_str(),
            &plain["labels"],
            plain["fields"].get("json_error")
        ),
        (Some("replay"), &serde_json::json!({}), None),
        "a file no source matches: {plain}"
    );
    assert_eq!(plain["pattern"], "deploy.step");
}
