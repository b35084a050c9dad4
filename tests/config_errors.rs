//! What the command line tells the user: config problems with the file, line
//! and fix (all of them in one run), secrets that never show, usage errors,
//! the version, and `replay`'s events.

mod common;

use std::path::Path;

use common::{Env, Finished, free_addr, http_get, run_to_exit, wait_until};
use logward::event::KEYS;
use serde_json::Value;

/// `logward check -c CONFIG` and `logward run -c CONFIG` on an invalid config:
/// both exit 1, and both print every one of `expected` (whole lines or their starts).
fn assert_rejected(config: &Path, expected: &[String]) -> Vec<Finished> {
    let config = config.to_str().unwrap();
    let check = run_to_exit(&["check", "-c", config], &[], b"");
    let run = run_to_exit(&["run", "-c", config], &[], b"");
    for (cmd, out, text) in [("check", &check, &check.stdout), ("run", &run, &run.stderr)] {
        assert_eq!(
            out.status.code(),
            Some(1),
            "`{cmd}` exit\n{}",
            out.all_output()
        );
        for line in expected {
            assert!(
                text.lines().any(|l| l.starts_with(line.as_str())),
                "`{cmd}` does not say `{line}`:\n{}",
                out.all_output()
            );
        }
    }
    vec![check, run]
}

#[test]
fn config_error_names_file_line_and_fix() {
    let env = Env::new();
    let state = env.path("state");
    let typo = env.write(
        "typo.toml",
        &format!(
            "state_dir = \"{}\"\n\n[[source]]\nname = \"app\"\ntype = \"file\"\npathz = [\"/var/log/*.log\"]\n",
            state.display()
        ),
    );
    assert_rejected(
        &typo,
        &[format!(
            "{}:6:1: unknown key `pathz` — did you mean `paths`? valid keys here: ",
            typo.display()
        )],
    );

    let several = env.write(
        "several.toml",
        &format!(
            "state_dir = \"{}\"\n\n[[source]]\nname = \"app\"\ntype = \"file\"\npaths = [\"/var/log/[.log\"]\nformat = \"yaml\"\npoll_interval = \"often\"\n",
            state.display()
        ),
    );
    let f = several.display();
    let outputs = assert_rejected(
        &several,
        &[
            format!("{f}:6:10: invalid glob `/var/log/[.log`"),
            format!(
                "{f}:7:10: unknown format `yaml` — use one of \"auto\", \"text\", \"json\", \"cri\", \"docker\""
            ),
            format!("{f}:8:17: invalid `poll_interval` — `often` is not a duration"),
        ],
    );
    let check = &outputs[0].stdout;
    assert_eq!(
        check
            .lines()
            .filter(|l| l.starts_with(&f.to_string()))
            .count(),
        3,
        "one line per problem:\n{check}"
    );
    assert!(check.contains("3 problems found"), "{check}");
    assert!(!state.exists(), "a rejected config must not start anything");
}

#[test]
fn missing_env_var_is_an_error() {
    const VAR: &str = "LOGWARD_TEST_UNSET_VAR";
    assert!(
        std::env::var_os(VAR).is_none(),
        "{VAR} must not be set for this test"
    );
    let env = Env::new();
    let config = env.write(
        "env.toml",
        &format!("# state lives where the variable says\nstate_dir = \"${{{VAR}}}\"\n"),
    );
    assert_rejected(
        &config,
        &[format!(
            "{}:2:13: environment variable `{VAR}` is not set — export {VAR}=...",
            config.display()
        )],
    );

    let state = env.path("state");
    let set = run_to_exit(
        &["check", "-c", config.to_str().unwrap()],
        &[(VAR, state.to_str().unwrap())],
        b"",
    );
    assert!(set.status.success(), "{}", set.all_output());
    assert!(set.stdout.contains("valid"), "{}", set.stdout);
}

#[test]
fn secret_file_is_read_and_never_printed() {
    const SECRET: &str = "tok-5f1e9c-never-print-me";
    let env = Env::new();
    let secret_file = env.path("http-token");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret");
    let addr = free_addr();
    let http_config = |name: &str, http_keys: &str| {
        env.write(
            name,
            &format!(
                "state_dir = \"{}\"\n[http]\nlisten = \"{addr}\"\n{http_keys}\n",
                env.path("state").display()
            ),
        )
    };
    let mut outputs = Vec::new();

    let good = http_config(
        "good.toml",
        &format!("token_file = \"{}\"", secret_file.display()),
    );
    let check = run_to_exit(&["check", "-c", good.to_str().unwrap()], &[], b"");
    assert!(check.status.success(), "{}", check.all_output());
    outputs.push(check.all_output());
    let agent = env.start_with(&good, &[("LOGWARD_LOG", "trace")]);
    for path in ["/health", "/ready", "/metrics"] {
        let (status, body) = wait_until(&format!("{path} to answer 200"), &agent, || {
            http_get(addr, path).ok().filter(|(s, _)| *s == 200)
        });
        outputs.push(format!("{path}: {status} {body}"));
    }
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    outputs.push(stderr);

    let missing = env.path("no-such-token");
    let bad = http_config(
        "missing.toml",
        &format!("token_file = \"{}\"", missing.display()),
    );
    let empty_file = env.path("empty-token");
    std::fs::write(&empty_file, "\n").expect("write empty secret");
    let empty = http_config(
        "empty.toml",
        &format!("token_file = \"{}\"", empty_file.display()),
    );
    let both = http_config(
        "both.toml",
        &format!(
            "token = \"inline\"\ntoken_file = \"{}\"",
            secret_file.display()
        ),
    );
    // Each problem points at the `token_file` value: line 4, or 5 after `token`.
    for (config, at, problem) in [
        (
            &bad,
            "4:14",
            format!("cannot read `token_file` {}: ", missing.display()),
        ),
        (
            &empty,
            "4:14",
            format!("`token_file` {} is empty", empty_file.display()),
        ),
        (
            &both,
            "5:14",
            "both `token` and `token_file` are set".to_string(),
        ),
    ] {
        let expected = format!("{}:{at}: {problem}", config.display());
        for out in assert_rejected(config, &[expected]) {
            outputs.push(out.all_output());
        }
    }

    for out in &outputs {
        assert!(!out.contains(SECRET), "the secret was printed:\n{out}");
    }
}

#[test]
fn usage_error_exits_2() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["run", "--no-such-flag"],
        &["check", "-c"],
        &["replay"],
    ] {
        let out = run_to_exit(args, &[], b"");
        assert_eq!(
            out.status.code(),
            Some(2),
            "`logward {}`\n{}",
            args.join(" "),
            out.all_output()
        );
        assert!(
            out.stderr.contains("Usage:") || out.stderr.contains("error:"),
            "`logward {}` says nothing about the mistake:\n{}",
            args.join(" "),
            out.stderr
        );
    }
}

#[test]
fn version_prints_commit_and_date() {
    let out = run_to_exit(&["version"], &[], b"");
    assert!(out.status.success(), "{}", out.all_output());
    let line = out.stdout.trim();
    let rest = line
        .strip_prefix(&format!("logward {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not `logward VERSION (commit C, built D)`: {line}"));
    let (commit, date) = rest
        .split_once(", built ")
        .expect("`, built ` in the version");
    // The commit this tree is checked out at, as the build embeds it.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_string(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
        );
    assert_eq!(commit, head, "{line}");
    let digits: Vec<bool> = date.chars().map(|c| c.is_ascii_digit()).collect();
    assert!(
        date.len() == 10
            && date.chars().enumerate().all(|(i, c)| if i == 4 || i == 7 {
                c == '-'
            } else {
                digits[i]
            }),
        "build date is not YYYY-MM-DD: {line}"
    );
    let flag = run_to_exit(&["--version"], &[], b"");
    assert_eq!(flag.stdout.trim(), line, "--version and `version` agree");
}

#[test]
fn replay_prints_one_event_per_line() {
    let env = Env::new();
    let file = env.logs().join("build.log");
    std::fs::write(&file, "alpha step\nbeta step\ngamma step without newline").expect("write");
    let file_arg = file.to_str().unwrap();
    let from_file = run_to_exit(&["replay", file_arg], &[], b"");
    let from_stdin = run_to_exit(&["replay", "-"], &[], b"one\ntwo\n");

    for (out, path, lines) in [
        (
            &from_file,
            file_arg,
            &["alpha step", "beta step", "gamma step without newline"][..],
        ),
        (&from_stdin, "-", &["one", "two"][..]),
    ] {
        assert!(out.status.success(), "{}", out.all_output());
        let events: Vec<Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        assert_eq!(events.len(), lines.len(), "{}", out.stdout);
        let mut offset = 0;
        for (e, line) in events.iter().zip(lines) {
            for key in KEYS {
                assert!(e.get(key).is_some(), "`{key}` missing: {e}");
            }
            assert_eq!(
                (&e["line"], &e["path"], &e["offset"]),
                (&(*line).into(), &path.into(), &offset.into())
            );
            offset += line.len() as u64 + 1;
            for key in ["level", "service", "ci_run_id", "pattern"] {
                assert_eq!(e[key], Value::Null, "`{key}` of a plain line: {e}");
            }
            assert_eq!(e["matched"], false, "{e}");
            for key in ["message", "template"] {
                assert!(e[key].is_null() || e[key].is_string(), "`{key}`: {e}");
            }
            assert!(
                e["fingerprint"].is_null()
                    || e["fingerprint"].as_str().is_some_and(|f| f.len() == 16
                        && f.chars()
                            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))),
                "{e}"
            );
            assert!(e["fields"].is_object() && e["ts"].is_string(), "{e}");
        }
    }
}

#[test]
fn replay_of_a_missing_file_names_it() {
    let env = Env::new();
    let missing = env.path("no-such.log");
    let out = run_to_exit(&["replay", missing.to_str().unwrap()], &[], b"");
    assert_eq!(out.status.code(), Some(1), "{}", out.all_output());
    assert!(
        out.stderr.contains(&missing.display().to_string()),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}
