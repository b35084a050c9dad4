//! Test harness: a temp directory with `logs/`, `state/` and an output file,
//! a config written for it, and the `logward` binary started on it.
//! A failure prints the agent's stderr.

#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_logward");

/// How long a test waits for something that should take milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("logs")).expect("logs dir");
        Env { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn logs(&self) -> PathBuf {
        self.path("logs")
    }

    pub fn out(&self) -> PathBuf {
        self.path("out/events.ndjson")
    }

    /// A config with one file source on `logs/*.log` (plus `source_extra` keys),
    /// fast polling, and `[output.file]`.
    pub fn config(&self, source_extra: &str) -> PathBuf {
        self.config_with(source_extra, "")
    }

    pub fn config_with(&self, source_extra: &str, top_extra: &str) -> PathBuf {
        let text = format!(
            r#"state_dir = "{state}"
checkpoint_interval = "100ms"
shutdown_timeout = "10s"
{top_extra}

[[source]]
name = "test"
type = "file"
paths = ["{logs}/*.log"]
poll_interval = "20ms"
rescan_interval = "200ms"
rotate_wait = "300ms"
{source_extra}

[output.file]
path = "{out}"
"#,
            state = self.path("state").display(),
            logs = self.logs().display(),
            out = self.out().display(),
        );
        let p = self.path("logward.toml");
        fs::write(&p, text).expect("write config");
        p
    }

    pub fn start(&self, config: &Path) -> Agent {
        self.start_with(config, &[])
    }

    pub fn start_with(&self, config: &Path, env: &[(&str, &str)]) -> Agent {
        let stderr_path = self.path(&format!("agent-{}.stderr", now_nanos()));
        let stderr = fs::File::create(&stderr_path).expect("stderr file");
        let child = Command::new(BIN)
            .args(["run", "-c"])
            .arg(config)
            .env("LOGWARD_LOG", "logward=debug,info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start logward");
        Agent {
            child: Some(child),
            stderr_path,
        }
    }

    pub fn append(&self, rel: &str, text: &str) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs().join(rel))
            .expect("open log");
        f.write_all(text.as_bytes()).expect("append");
    }

    /// Every event in the output so far.
    pub fn events(&self) -> Vec<Value> {
        read_ndjson(&self.out())
    }

    /// The `line` of every event so far.
    pub fn lines(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["line"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits until the output holds at least `n` events; panics with the agent's stderr otherwise.
    pub fn wait_for_events(&self, n: usize, agent: &Agent) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let events = self.events();
            if events.len() >= n {
                return events;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited for {n} events, have {}\n--- agent stderr ---\n{}",
                    events.len(),
                    agent.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Complete lines only: a batch may be half-written while a test reads.
pub fn read_ndjson(path: &Path) -> Vec<Value> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    complete
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("output line is not JSON ({e}): {l}"))
        })
        .collect()
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub struct Agent {
    child: Option<Child>,
    stderr_path: PathBuf,
}

impl Agent {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        signal(child.id(), libc::SIGTERM);
        let status = wait_timeout(&mut child, PATIENCE).unwrap_or_else(|| {
            let _ = child.kill();
            panic!(
                "agent did not exit within {PATIENCE:?} of SIGTERM\n{}",
                self.stderr()
            )
        });
        (status, self.stderr())
    }

    /// `kill -9`: no chance to flush or save anything.
    pub fn kill9(mut self) {
        let mut child = self.child.take().expect("running");
        signal(child.id(), libc::SIGKILL);
        let _ = child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `logward ARGS` to completion with `stdin`, returning (status, stdout, stderr).
pub fn logward(args: &[&str], stdin: &[u8]) -> (ExitStatus, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start logward");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait logward");
    let _ = writer.join();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Numbered lines `prefix-000000` .. for loss and duplication checks.
pub fn numbered(prefix: &str, from: usize, to: usize) -> String {
    (from..to).map(|i| format!("{prefix}-{i:06}\n")).collect()
}
