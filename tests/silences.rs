//! `logward silence add|list|expire` through the binary: silences land in the config's
//! `state_dir`, are listed with their remaining time, expire by id prefix, and mistakes are
//! named with their fix. Whether a running agent honours them is tested with the pipeline.

mod common;

use common::{Env, Finished, run_to_exit};
use serde_json::Value;

fn silence(config: &std::path::Path, args: &[&str]) -> Finished {
    let mut all = vec!["silence", args[0], "-c", config.to_str().unwrap()];
    all.extend_from_slice(&args[1..]);
    run_to_exit(&all, &[("USER", "alice")], b"")
}

fn ok(out: Finished) -> Finished {
    assert_eq!(out.status.code(), Some(0), "{}", out.all_output());
    out
}

fn failed(out: &Finished, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", out.all_output());
    assert!(
        out.stderr.contains(needle),
        "stderr does not say `{needle}`:\n{}",
        out.stderr
    );
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn silence_add_list_expire_round_trip() {
    let env = Env::new();
    let config = env.config("");
    let add = ok(silence(
        &config,
        &[
            "add",
            "--match",
            "service=api",
            "-m",
            "level=error",
            "--for",
            "2h",
            "--comment",
            "deploy of api",
        ],
    ));
    let first = add.stdout.trim().to_string();
    assert_eq!(first.len(), 8, "the id alone on stdout: {:?}", add.stdout);
    assert!(
        add.stderr
            .contains("silenced service=api level=error from now until"),
        "{}",
        add.stderr
    );
    let second = ok(silence(
        &config,
        &["add", "--match", "ci_run_id=~47.*", "--for", "30m"],
    ))
    .stdout
    .trim()
    .to_string();
    assert_ne!(first, second);
    assert!(env.path("state/silences.json").exists());

    let list = ok(silence(&config, &["list"])).stdout;
    let rows: Vec<&str> = list.lines().collect();
    assert_eq!(rows.len(), 3, "a header and two silences:\n{list}");
    assert!(
        rows[0].starts_with("ID") && rows[0].contains("MATCHERS"),
        "{list}"
    );
    // Active ones, the soonest end first.
    assert!(
        rows[1].starts_with(&second) && rows[1].contains("ci_run_id=~47.*"),
        "{list}"
    );
    assert!(
        rows[1].contains("active, 29m") && rows[1].contains("left"),
        "{list}"
    );
    assert!(
        rows[2].starts_with(&first) && rows[2].contains("active, 1h 59m left"),
        "{list}"
    );
    assert!(rows[2].contains("service=api level=error"), "{list}");
    assert!(
        rows[2].contains("deploy of api") && rows[2].contains("alice@"),
        "{list}"
    );

    // The shortest prefix of `first` that `second` does not share.
    let n = (1..=8).find(|&n| !second.starts_with(&first[..n])).unwrap();
    let expired = ok(silence(&config, &["expire", &first[..n]])).stdout;
    assert!(
        expired.starts_with(&format!("expired {first}: service=api level=error")),
        "{expired}"
    );

    let list = ok(silence(&config, &["list"])).stdout;
    let rows: Vec<&str> = list.lines().collect();
    assert!(rows[1].starts_with(&second), "{list}");
    assert!(
        rows[2].starts_with(&first) && rows[2].contains("expired 0s ago"),
        "{list}"
    );

    let json = json_lines(&ok(silence(&config, &["list", "--json"])).stdout);
    let statuses: Vec<(&str, &str)> = json
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [(&*second, "active"), (&*first, "expired")]);
    assert_eq!(json[1]["matchers"][0]["key"], "service");
    assert_eq!(json[1]["matchers"][0]["op"], "=");
    assert_eq!(json[1]["comment"], "deploy of api");
    assert!(json[1]["expired_at"].is_string());

    // `$LOGWARD_CONFIG` finds the same store.
    let by_env = run_to_exit(
        &["silence", "list", "--json"],
        &[("LOGWARD_CONFIG", config.to_str().unwrap())],
        b"",
    );
    assert_eq!(
        json_lines(&by_env.stdout).len(),
        2,
        "{}",
        by_env.all_output()
    );
}

#[test]
fn silence_errors_name_the_fix() {
    let env = Env::new();
    let config = env.config("");
    let add =
        |matcher: &str, dur: &str| silence(&config, &["add", "--match", matcher, "--for", dur]);

    failed(
        &add("service", "1h"),
        "invalid --match `service`: no operator; write KEY=VALUE, e.g. `service=api`",
    );
    failed(
        &add("level>=error", "1h"),
        "use `=`, `!=`, `=~` (regex) or `!~`",
    );
    failed(&add("service=~(api", "1h"), "not a valid regex");
    failed(
        &add("level=loud", "1h"),
        "unknown level `loud`; use one of trace",
    );
    failed(&add("service!=api", "1h"), "would cover every event");
    failed(
        &add("service=api", "soon"),
        "invalid --for: `soon` is not a duration",
    );
    failed(&add("service=api", "0s"), "longer than 0s; e.g. --for 2h");
    failed(
        &silence(
            &config,
            &[
                "add",
                "-m",
                "service=api",
                "--for",
                "1h",
                "--starts-at",
                "tomorrow",
            ],
        ),
        "invalid --starts-at `tomorrow`: write an RFC 3339 time",
    );
    assert!(
        !env.path("state/silences.json").exists(),
        "nothing was added"
    );

    let unknown = silence(&config, &["expire", "deadbeef"]);
    failed(&unknown, "no silence `deadbeef` in ");
    failed(&unknown, "silences.json; `logward silence list`");

    let missing = env.path("nowhere.toml");
    let out = silence(&missing, &["list"]);
    failed(&out, "nowhere.toml");
    failed(
        &out,
        "pass an existing file with -c FILE or $LOGWARD_CONFIG",
    );

    let not_a_dir = env.write("file", "");
    let config = env.write(
        "file-state.toml",
        &format!("state_dir = \"{}\"\n", not_a_dir.join("state").display()),
    );
    failed(
        &silence(&config, &["add", "-m", "service=api", "--for", "1h"]),
        "point state_dir at a directory",
    );

    // Usage errors are clap's: exit 2.
    let usage = run_to_exit(&["silence", "add", "--for", "1h"], &[], b"");
    assert_eq!(usage.status.code(), Some(2), "{}", usage.all_output());
    assert!(
        usage.stderr.contains("--match <MATCHER>"),
        "{}",
        usage.stderr
    );
}

#[test]
fn concurrent_adds_from_several_processes_all_land() {
    let env = Env::new();
    let config = env.config("");
    let config = config.to_str().unwrap().to_string();
    let adders: Vec<_> = (0..8)
        .map(|i| {
            let config = config.clone();
            std::thread::spawn(move || {
                let matcher = format!("service=svc-{i}");
                let out = run_to_exit(
                    &[
                        "silence", "add", "-c", &config, "-m", &matcher, "--for", "1h",
                    ],
                    &[],
                    b"",
                );
                assert_eq!(out.status.code(), Some(0), "{}", out.all_output());
                out.stdout.trim().to_string()
            })
        })
        .collect();
    let mut ids: Vec<String> = adders.into_iter().map(|t| t.join().unwrap()).collect();
    ids.sort();
    let listed = run_to_exit(&["silence", "list", "--json", "-c", &config], &[], b"");
    let mut found: Vec<String> = json_lines(&listed.stdout)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    found.sort();
    assert_eq!(found, ids, "every add landed once");
}
