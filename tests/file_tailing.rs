//! File tailing end to end: the real `logward` binary on temp dirs, through
//! rotation, truncation, restarts, new files and the open-file cap. Every test
//! checks the exact set of delivered lines: nothing missing, nothing twice.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    Agent, Config, Env, PATIENCE, free_addr, http_table, numbered, try_metric, wait_ready,
    wait_until,
};

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// The lines of a text, as the output's `line` values are expected to be.
fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// Numbered lines `prefix-000000` .. as expected output lines.
fn expected(prefix: &str, from: usize, to: usize) -> Vec<String> {
    lines(&numbered(prefix, from, to))
}

/// Waits until every line of `want` has been delivered (at least once).
fn wait_for_lines(env: &Env, agent: &Agent, want: &[String]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let missing = not_delivered(env, want);
        if missing.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "waited {PATIENCE:?} for {} lines, {} still missing, first: {:?}\n--- agent stderr ---\n{}",
                want.len(),
                missing.len(),
                &missing[..missing.len().min(5)],
                agent.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of `want` that are not in the output yet.
fn not_delivered<'a>(env: &Env, want: &'a [String]) -> Vec<&'a String> {
    let got: HashSet<String> = env.lines().into_iter().collect();
    want.iter().filter(|l| !got.contains(*l)).collect()
}

fn counts(lines: &[String]) -> BTreeMap<&String, usize> {
    let mut counts = BTreeMap::new();
    for l in lines {
        *counts.entry(l).or_insert(0) += 1;
    }
    counts
}

/// Stops the agent with SIGTERM, asserts it exits 0, and returns its stderr.
fn stop(agent: Agent) -> String {
    let (status, stderr) = agent.stop();
    assert!(
        status.success(),
        "agent exited with {status}\n--- agent stderr ---\n{stderr}"
    );
    stderr
}

/// Asserts that the output holds exactly `want`: every line once, nothing else.
fn assert_exactly_once(env: &Env, want: &[String], stderr: &str) {
    let got = env.lines();
    let got_counts = counts(&got);
    let want_counts = counts(want);
    let missing: Vec<&&String> = want_counts
        .keys()
        .filter(|l| !got_counts.contains_key(*l))
        .collect();
    let twice: Vec<(&&String, &usize)> = got_counts.iter().filter(|(_, n)| **n > 1).collect();
    let unexpected: Vec<&&String> = got_counts
        .keys()
        .filter(|l| !want_counts.contains_key(*l))
        .collect();
    assert!(
        missing.is_empty() && twice.is_empty() && unexpected.is_empty() && got.len() == want.len(),
        "expected {} lines exactly once, got {}\nmissing ({}): {:?}\nmore than once ({}): {:?}\nunexpected ({}): {:?}\n--- agent stderr ---\n{stderr}",
        want.len(),
        got.len(),
        missing.len(),
        &missing[..missing.len().min(5)],
        twice.len(),
        &twice[..twice.len().min(5)],
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)],
    );
}

/// Waits for every line of `want`, stops the agent cleanly (which drains
/// everything it read) and asserts that each line was delivered exactly once.
fn deliver_then_stop(env: &Env, agent: Agent, want: &[String]) {
    wait_for_lines(env, &agent, want);
    let stderr = stop(agent);
    assert_exactly_once(env, want, &stderr);
}

/// A writer's descriptor on a log file, appending like a logging library does.
fn writer(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn write(f: &mut File, text: &str) {
    f.write_all(text.as_bytes()).expect("write log");
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .ino()
}

/// While alive, the agent's process is stopped (SIGSTOP), so that it sees only
/// the end state of a sequence of file operations, never a step in between.
struct Frozen<'a>(&'a Agent);

impl<'a> Frozen<'a> {
    fn new(agent: &'a Agent) -> Frozen<'a> {
        common::signal(agent.pid(), libc::SIGSTOP);
        Frozen(agent)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        common::signal(self.0.pid(), libc::SIGCONT);
    }
}

// ---------------------------------------------------------------------------
// Rotation and truncation while running
// ---------------------------------------------------------------------------

#[test]
fn rotation_by_rename_loses_no_line() {
    let env = Env::new();
    let app = env.logs().join("app.log");
    // Long enough that the old file is still followed whatever the machine's load.
    let config = env.config_with(Config {
        rotate_wait: "1m",
        ..Config::default()
    });
    let mut old = writer(&app);
    write(&mut old, &numbered("app", 0, 1000));
    let agent = env.start(&config);
    wait_for_lines(&env, &agent, &expected("app", 0, 1));

    // Mid-stream: the agent is still reading when the file is renamed away.
    write(&mut old, &numbered("app", 1000, 2000));
    fs::rename(&app, env.logs().join("app.log.1")).expect("rotate");
    // The writer has not reopened yet: its lines still go to the renamed file.
    write(&mut old, &numbered("app", 2000, 2010));
    let mut new = writer(&app);
    write(&mut new, &numbered("app", 2010, 3000));
    // A second process that has not reopened yet either.
    write(&mut old, &numbered("app", 3000, 3010));

    deliver_then_stop(&env, agent, &expected("app", 0, 3010));
}

#[test]
fn copytruncate_loses_no_line() {
    let env = Env::new();
    let app = env.logs().join("app.log");
    let mut log = writer(&app);
    write(&mut log, &numbered("app", 0, 100));
    let agent = env.start(&env.config(""));
    wait_for_lines(&env, &agent, &expected("app", 0, 100));

    {
        // The agent looks only once the file is longer than its old position
        // again: only the head checksum tells the new content from the old.
        let _frozen = Frozen::new(&agent);
        fs::copy(&app, env.logs().join("app.log.1")).expect("copy");
        log.set_len(0).expect("truncate");
        write(&mut log, &numbered("app", 100, 300));
    }

    deliver_then_stop(&env, agent, &expected("app", 0, 300));
}

#[test]
fn truncation_restarts_from_zero() {
    let env = Env::new();
    let addr = free_addr();
    let app = env.logs().join("app.log");
    fs::write(&app, numbered("old", 0, 100)).expect("write log");
    let agent = env.start(&env.config_with(Config {
        top_extra: &http_table(addr),
        ..Config::default()
    }));
    wait_for_lines(&env, &agent, &expected("old", 0, 100));

    let before = inode(&app);
    fs::write(&app, numbered("new", 0, 10)).expect("truncate and rewrite");
    assert_eq!(inode(&app), before, "truncated in place, not replaced");

    wait_for_lines(&env, &agent, &expected("new", 0, 10));
    wait_until("logward_file_truncations_total >= 1", &agent, || {
        try_metric(addr, r#"logward_file_truncations_total{source="test"}"#).filter(|n| *n >= 1.0)
    });
    let mut want = expected("old", 0, 100);
    want.extend(expected("new", 0, 10));
    deliver_then_stop(&env, agent, &want);
}

#[test]
fn deleted_while_open_is_read_to_its_end() {
    let env = Env::new();
    let app = env.logs().join("app.log");
    let mut log = writer(&app);
    write(&mut log, &numbered("app", 0, 10));
    let agent = env.start(&env.config(""));
    wait_for_lines(&env, &agent, &expected("app", 0, 10));

    {
        // Deleted before the agent could read the last lines: its descriptor still can.
        let _frozen = Frozen::new(&agent);
        write(&mut log, &numbered("app", 10, 500));
        fs::remove_file(&app).expect("delete");
    }

    deliver_then_stop(&env, agent, &expected("app", 0, 500));
}

#[test]
fn line_split_across_writes_is_delivered_whole() {
    let env = Env::new();
    let mut log = writer(&env.logs().join("app.log"));
    write(&mut log, "first\nsec");
    let agent = env.start(&env.config(""));
    wait_for_lines(&env, &agent, &lines("first"));
    write(&mut log, "ond half\n");
    deliver_then_stop(&env, agent, &lines("first\nsecond half"));
}

#[test]
fn unterminated_last_line_of_a_rotated_file_is_delivered() {
    let env = Env::new();
    let app = env.logs().join("app.log");
    write(&mut writer(&app), "complete\npartial");
    let agent = env.start(&env.config(""));
    wait_for_lines(&env, &agent, &lines("complete"));
    // Nobody writes to it any more: after `rotate_wait` its last line is complete.
    fs::rename(&app, env.logs().join("app.log.1")).expect("rotate");
    deliver_then_stop(&env, agent, &lines("complete\npartial"));
}

#[test]
fn file_renamed_away_and_back_is_not_read_twice() {
    let env = Env::new();
    let addr = free_addr();
    let app = env.logs().join("app.log");
    let away = env.logs().join("app.log.away");
    fs::write(&app, numbered("app", 0, 50)).expect("write log");
    let agent = env.start(&env.config_with(Config {
        top_extra: &http_table(addr),
        ..Config::default()
    }));
    wait_for_lines(&env, &agent, &expected("app", 0, 50));

    fs::rename(&app, &away).expect("rename away");
    wait_until("the agent to see the file renamed away", &agent, || {
        try_metric(addr, r#"logward_file_rotations_total{source="test"}"#).filter(|n| *n >= 1.0)
    });
    fs::rename(&away, &app).expect("rename back");
    env.append("app.log", &numbered("app", 50, 60));
    wait_for_lines(&env, &agent, &expected("app", 0, 60));
    // Time for a wrong release after `rotate_wait` and a rescan to show as
    // the file read again from 0. Nothing waits on this; no speed is asserted.
    std::thread::sleep(Duration::from_secs(1));
    env.append("app.log", &numbered("app", 60, 70));
    deliver_then_stop(&env, agent, &expected("app", 0, 70));
}

// ---------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------

/// Starts an agent on `glob`, waits until it follows `logs/first.log`, then
/// creates each of `new_files` (relative to `logs/`) and expects their lines.
fn assert_new_files_are_picked_up(glob: &str, new_files: &[&str]) {
    let env = Env::new();
    let config = env.config_with(Config {
        globs: &[glob],
        ..Config::default()
    });
    env.append("first.log", "first\n");
    let agent = env.start(&config);
    // The agent is running and has scanned: whatever comes now is new.
    wait_for_lines(&env, &agent, &lines("first"));

    let mut want = lines("first");
    for (i, rel) in new_files.iter().enumerate() {
        let path = env.logs().join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
        let prefix = format!("new{i}");
        write(&mut writer(&path), &numbered(&prefix, 0, 20));
        want.extend(expected(&prefix, 0, 20));
    }
    deliver_then_stop(&env, agent, &want);
}

#[test]
fn new_file_matching_glob_is_picked_up() {
    assert_new_files_are_picked_up("*.log", &["new.log"]);
    // A recursive glob also finds files in directories created after the start.
    assert_new_files_are_picked_up("**/*.log", &["new.log", "sub/dir/new.log"]);
}

#[test]
fn one_line_file_is_read() {
    let env = Env::new();
    // Far shorter than the 1024-byte head window, and fewer lines than format
    // detection looks at: neither may hold the line back.
    env.append("one.log", "the only line\n");
    let agent = env.start(&env.config(r#"format = "auto""#));
    wait_for_lines(&env, &agent, &lines("the only line"));
    env.append("later.log", "another single line\n");
    deliver_then_stop(&env, agent, &lines("the only line\nanother single line"));
}

#[test]
fn thousand_files_with_open_file_cap() {
    const FILES: usize = 1000;
    const CAP: usize = 16;
    // stdio, output, positions, inotify, the runtime, HTTP connections...
    const FD_SLACK: usize = 40;
    let env = Env::new();
    let addr = free_addr();
    let name = |i: usize| format!("f{i:04}.log");
    for i in 0..FILES {
        env.append(&name(i), &numbered(&format!("f{i:04}"), 0, 1));
    }
    let config = env.config_with(Config {
        source_extra: &format!("max_open_files = {CAP}"),
        top_extra: &http_table(addr),
        ..Config::default()
    });
    let agent = env.start(&config);

    let (mut max_gauge, mut gauge_samples, mut max_fds) = (0.0f64, 0, 0);
    let mut sample = |agent: &Agent| {
        if let Some(open) = try_metric(addr, r#"logward_open_files{source="test"}"#) {
            max_gauge = max_gauge.max(open);
            gauge_samples += 1;
        }
        let fds = fs::read_dir(format!("/proc/{}/fd", agent.pid())).map_or(0, |d| d.count());
        max_fds = max_fds.max(fds);
        assert!(
            max_gauge <= CAP as f64 && max_fds < CAP + FD_SLACK,
            "logward_open_files reached {max_gauge}, descriptors {max_fds} (cap {CAP})\n--- agent stderr ---\n{}",
            agent.stderr()
        );
    };
    let mut wait_sampling = |what: &str, want: &[String]| {
        wait_until(what, &agent, || {
            sample(&agent);
            not_delivered(&env, want).is_empty().then_some(())
        })
    };
    let firsts: Vec<String> = (0..FILES)
        .flat_map(|i| expected(&format!("f{i:04}"), 0, 1))
        .collect();
    wait_sampling("the first line of every file", &firsts);

    for i in 0..FILES {
        env.append(&name(i), &numbered(&format!("f{i:04}"), 1, 2));
    }
    let all: Vec<String> = (0..FILES)
        .flat_map(|i| expected(&format!("f{i:04}"), 0, 2))
        .collect();
    wait_sampling("the second line of every file", &all);
    assert!(
        gauge_samples > 0,
        "logward_open_files was never on /metrics"
    );
    eprintln!(
        "max logward_open_files {max_gauge}, max descriptors {max_fds}, {gauge_samples} samples"
    );
    deliver_then_stop(&env, agent, &all);
}

#[test]
fn files_closed_by_the_open_file_cap_are_not_reopened_while_idle() {
    const FILES: usize = 300;
    const CAP: usize = 8;
    const POLL: Duration = Duration::from_millis(20); // `poll_interval` of `Env::config`
    let env = Env::new();
    for i in 0..FILES {
        env.append(
            &format!("f{i:03}.log"),
            &numbered(&format!("f{i:03}"), 0, 1),
        );
    }
    let agent = env.start(&env.config(&format!("max_open_files = {CAP}")));
    let all: Vec<String> = (0..FILES)
        .flat_map(|i| expected(&format!("f{i:03}"), 0, 1))
        .collect();
    wait_for_lines(&env, &agent, &all);

    // Nothing is written now. A poll looks at the open files (an `fstat` each,
    // a `read` at most); a closed file waits for a watch event or a scan to say
    // it grew, instead of being reopened and read on every poll.
    let reads = || {
        let io = fs::read_to_string(format!("/proc/{}/io", agent.pid()))
            .unwrap_or_else(|e| panic!("read /proc/<pid>/io: {e}"));
        io.lines()
            .find_map(|l| l.strip_prefix("syscr: "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .expect("syscr in /proc/<pid>/io")
    };
    let (start, before) = (Instant::now(), reads());
    std::thread::sleep(Duration::from_secs(1));
    let (elapsed, read) = (start.elapsed(), reads() - before);
    let polls = (elapsed.as_millis() / POLL.as_millis()) as u64 + 2;
    let at_most = polls * (CAP as u64 + 8);
    assert!(
        read <= at_most,
        "{read} reads in {elapsed:?} of idleness, more than {at_most} ({polls} polls of {CAP} open files): \
         closed files are reopened on every poll\n--- agent stderr ---\n{}",
        agent.stderr()
    );
    deliver_then_stop(&env, agent, &all);
}

// ---------------------------------------------------------------------------
// Restarts
// ---------------------------------------------------------------------------

#[test]
fn restart_resumes_at_saved_position() {
    let env = Env::new();
    let config = env.config("");
    env.append("app.log", &numbered("app", 0, 100));
    let agent = env.start(&config);
    deliver_then_stop(&env, agent, &expected("app", 0, 100));

    env.append("app.log", &numbered("app", 100, 150));
    let agent = env.start(&config);
    deliver_then_stop(&env, agent, &expected("app", 0, 150));
}

/// Delivers `old` lines of app.log, stops, rewrites the file in place (same
/// inode) with `new` lines of other content, and expects the new content from offset 0.
fn assert_rewritten_while_stopped_is_read_from_start(old: usize, new: usize) {
    let env = Env::new();
    let config = env.config("");
    let app = env.logs().join("app.log");
    fs::write(&app, numbered("old", 0, old)).expect("write log");
    let agent = env.start(&config);
    deliver_then_stop(&env, agent, &expected("old", 0, old));

    let before = inode(&app);
    fs::write(&app, numbered("new", 0, new)).expect("rewrite");
    assert_eq!(inode(&app), before, "rewritten in place, not replaced");

    let agent = env.start(&config);
    let mut want = expected("old", 0, old);
    want.extend(expected("new", 0, new));
    deliver_then_stop(&env, agent, &want);
}

#[test]
fn truncated_while_stopped_is_read_from_start() {
    assert_rewritten_while_stopped_is_read_from_start(100, 10);
}

#[test]
fn rewritten_longer_while_stopped_is_read_from_start() {
    // Longer than the saved offset: only the head checksum tells it is other content.
    assert_rewritten_while_stopped_is_read_from_start(100, 300);
}

#[test]
fn rewritten_longer_while_stopped_is_read_from_start_even_if_it_was_one_short_line() {
    // The saved head covers just those bytes (a partial window).
    assert_rewritten_while_stopped_is_read_from_start(1, 300);
}

#[test]
fn reused_inode_is_a_new_file() {
    const ATTEMPTS: usize = 1000;
    let env = Env::new();
    let config = env.config("");
    let app = env.logs().join("app.log");
    fs::write(&app, numbered("old", 0, 50)).expect("write log");
    let agent = env.start(&config);
    deliver_then_stop(&env, agent, &expected("old", 0, 50));

    let old_inode = inode(&app);
    fs::remove_file(&app).expect("delete");
    // Files that did not get the inode stay (the filesystem would hand out theirs
    // again); `*.tmp` is not matched by the glob.
    let reused = (0..ATTEMPTS)
        .map(|i| env.logs().join(format!("candidate-{i}.tmp")))
        .find(|candidate| {
            File::create(candidate).expect("create candidate");
            inode(candidate) == old_inode
        })
        .unwrap_or_else(|| {
            panic!(
                "no new file got the deleted file's inode {old_inode} in {ATTEMPTS} attempts: \
                 this filesystem does not reuse inodes (tmpfs never does); run with TMPDIR on ext4 or xfs"
            )
        });
    // Other content, longer than the saved offset.
    fs::write(&reused, numbered("new", 0, 100)).expect("write new content");
    fs::rename(&reused, &app).expect("rename into place");
    assert_eq!(inode(&app), old_inode);

    let agent = env.start(&config);
    let mut want = expected("old", 0, 50);
    want.extend(expected("new", 0, 100));
    deliver_then_stop(&env, agent, &want);
}

#[test]
fn rotated_while_stopped_to_a_matched_name_resumes_where_it_left_off() {
    let env = Env::new();
    let config = env.config("");
    let app = env.logs().join("app.log");
    let mut old = writer(&app);
    write(&mut old, &numbered("app", 0, 100));
    let agent = env.start(&config);
    deliver_then_stop(&env, agent, &expected("app", 0, 100));

    write(&mut old, &numbered("app", 100, 120));
    fs::rename(&app, env.logs().join("app-1.log")).expect("rotate");
    write(&mut writer(&app), &numbered("next", 0, 10));

    let agent = env.start(&config);
    let mut want = expected("app", 0, 120);
    want.extend(expected("next", 0, 10));
    deliver_then_stop(&env, agent, &want);
}

#[test]
fn start_at_end_skips_existing_content_only_on_first_start() {
    let env = Env::new();
    let config = env.config(r#"start_at = "end""#);
    env.append("app.log", &numbered("app", 0, 10));
    let agent = env.start(&config);
    wait_ready(&agent);

    // Appended after the start, and a file created after the start: read in full.
    env.append("app.log", &numbered("app", 10, 20));
    env.append("later.log", &numbered("later", 0, 5));
    let mut want = expected("app", 10, 20);
    want.extend(expected("later", 0, 5));
    deliver_then_stop(&env, agent, &want);

    // Written while stopped: the source has started before, `start_at` no longer applies.
    env.append("app.log", &numbered("app", 20, 30));
    env.append("stopped.log", &numbered("stopped", 0, 5));
    let agent = env.start(&config);
    want.extend(expected("app", 20, 30));
    want.extend(expected("stopped", 0, 5));
    deliver_then_stop(&env, agent, &want);
}
