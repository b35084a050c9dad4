//! The integration tests' harness: a temp directory with `logs/`, `state/`
//! and an output file, a config written for it, and the `logward` binary
//! started on it (or run to completion); waiting for a condition with a
//! deadline; the agent's HTTP endpoint (free port, plain HTTP/1.1 requests,
//! Prometheus samples); counting big outputs; tailing one file once.
//! A failure prints the agent's stderr. `delivery`: `logward run` with
//! receivers, for the delivery tests; `tls`: a private CA for TLS peers.

#![allow(dead_code)]

pub mod delivery;
pub mod tls;

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
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

/// What `Env::config_with` writes: one file source named `test`, polling every
/// 20ms, rescanning every 200ms. `Config::default()` is `Env::config("")`.
#[derive(Clone, Copy)]
pub struct Config<'a> {
    /// The source's `paths`, relative to `logs/`.
    pub globs: &'a [&'a str],
    /// The source's `rotate_wait`.
    pub rotate_wait: &'a str,
    /// More keys for the `[[source]]` table.
    pub source_extra: &'a str,
    /// More keys for the top level, e.g. `http_table(addr)`.
    pub top_extra: &'a str,
}

impl Default for Config<'_> {
    fn default() -> Self {
        Config {
            globs: &["*.log"],
            rotate_wait: "300ms",
            source_extra: "",
            top_extra: "",
        }
    }
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

    /// Writes `text` to `rel` in the env's directory and returns its path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// A config with one file source on `logs/*.log` (plus `source_extra` keys),
    /// fast polling, and `[output.file]`.
    pub fn config(&self, source_extra: &str) -> PathBuf {
        self.config_with(Config {
            source_extra,
            ..Config::default()
        })
    }

    /// `logward.toml`: the config `c` describes, with the env's state dir and output.
    pub fn config_with(&self, c: Config) -> PathBuf {
        let paths: Vec<String> = c
            .globs
            .iter()
            .map(|g| format!("{:?}", self.logs().join(g).display().to_string()))
            .collect();
        let text = format!(
            r#"state_dir = "{state}"
checkpoint_interval = "100ms"
shutdown_timeout = "10s"
{top_extra}

[[source]]
name = "test"
type = "file"
paths = [{paths}]
poll_interval = "20ms"
rescan_interval = "200ms"
rotate_wait = "{rotate_wait}"
{source_extra}

[output.file]
path = "{out}"
"#,
            state = self.path("state").display(),
            top_extra = c.top_extra,
            paths = paths.join(", "),
            rotate_wait = c.rotate_wait,
            source_extra = c.source_extra,
            out = self.out().display(),
        );
        self.write("logward.toml", &text)
    }

    pub fn start(&self, config: &Path) -> Agent {
        self.start_with(config, &[])
    }

    pub fn start_with(&self, config: &Path, env: &[(&str, &str)]) -> Agent {
        self.spawn(config, env, Stdio::null())
    }

    /// Starts the agent with its stdout (where the console receiver prints) going to `stdout`.
    pub fn start_with_stdout(&self, config: &Path, stdout: &Path) -> Agent {
        let file = fs::File::create(stdout).expect("stdout file");
        self.spawn(config, &[], Stdio::from(file))
    }

    /// Starts the agent with `env` set and its stdout kept, for [`Agent::stdout`].
    pub fn start_capturing(&self, config: &Path, env: &[(&str, &str)]) -> Agent {
        let path = self.path(&format!("agent-{}.stdout", now_nanos()));
        let file = fs::File::create(&path).expect("stdout file");
        let mut agent = self.spawn(config, env, Stdio::from(file));
        agent.stdout_path = Some(path);
        agent
    }

    fn spawn(&self, config: &Path, env: &[(&str, &str)], stdout: Stdio) -> Agent {
        let stderr_path = self.path(&format!("agent-{}.stderr", now_nanos()));
        let stderr = fs::File::create(&stderr_path).expect("stderr file");
        let child = Command::new(BIN)
            .args(["run", "-c"])
            .arg(config)
            .env("LOGWARD_LOG", "logward=debug,info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start logward");
        Agent {
            child: Some(child),
            stderr_path,
            stdout_path: None,
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

    /// The escalations waiting in the agent's outbox (`state/outbox/*.json`).
    pub fn outbox_items(&self) -> Vec<PathBuf> {
        let Ok(dir) = fs::read_dir(self.path("state/outbox")) else {
            return Vec::new();
        };
        let mut items: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        items.sort();
        items
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

    /// Waits until the output holds at least `n` complete lines, counting
    /// newlines only and reading each byte once: for big outputs, where parsing
    /// (or re-reading) everything on every poll is slow. Gives up when the output
    /// has not grown for `PATIENCE`: a big volume on a loaded machine may take
    /// longer than that in all, but never stalls that long.
    pub fn wait_for_output_lines(&self, n: usize, agent: &Agent) {
        let (mut seen, mut count) = (0u64, 0);
        let mut buf = vec![0u8; 1 << 20];
        let mut deadline = Instant::now() + PATIENCE;
        while count < n {
            let grew = fs::File::open(self.out()).is_ok_and(|mut f| {
                let before = seen;
                if std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(seen)).is_ok() {
                    while let Ok(read @ 1..) = f.read(&mut buf) {
                        seen += read as u64;
                        count += buf[..read].iter().filter(|b| **b == b'\n').count();
                    }
                }
                seen > before
            });
            if grew {
                deadline = Instant::now() + PATIENCE;
            } else if Instant::now() > deadline {
                panic!(
                    "waited for {n} lines in the output, have {count}, none new for {PATIENCE:?}\n--- agent stderr ---\n{}",
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
    stdout_path: Option<PathBuf>,
}

impl Agent {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// What the agent printed on stdout, when started with [`Env::start_capturing`].
    pub fn stdout(&self) -> String {
        self.stdout_path
            .as_ref()
            .and_then(|p| fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(self) -> (ExitStatus, String) {
        let (status, _, stderr) = self.stop_capturing();
        (status, stderr)
    }

    /// Sends SIGTERM and waits for the exit: the status, stdout (see [`Env::start_capturing`])
    /// and stderr.
    pub fn stop_capturing(mut self) -> (ExitStatus, String, String) {
        let mut child = self.child.take().expect("running");
        signal(child.id(), libc::SIGTERM);
        let status = wait_timeout(&mut child, PATIENCE).unwrap_or_else(|| {
            let _ = child.kill();
            panic!(
                "agent did not exit within {PATIENCE:?} of SIGTERM\n{}",
                self.stderr()
            )
        });
        (status, self.stdout(), self.stderr())
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

/// Polls `probe` until it returns `Some`; panics naming `what`, with the
/// agent's stderr, when `PATIENCE` runs out.
pub fn wait_until<T>(what: &str, agent: &Agent, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(x) = probe() {
            return x;
        }
        if Instant::now() > deadline {
            panic!(
                "waited {PATIENCE:?} for {what}\n--- agent stderr ---\n{}",
                agent.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every source of the agent is open (its files found and
/// tracked), as its log says.
pub fn wait_ready(agent: &Agent) {
    wait_until("the agent to be ready", agent, || {
        agent
            .stderr()
            .contains("ready: every source is open")
            .then_some(())
    });
}

/// What a finished `logward` run left: exit status, stdout, stderr.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Stdout and stderr together, for "appears nowhere" checks.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `logward ARGS` with `vars` set and `stdin` piped in (then closed), and
/// waits for it to exit by itself; panics with its stderr after `PATIENCE`.
/// Threads feed stdin and drain stdout and stderr, so nothing blocks on a full pipe.
pub fn run_to_exit(args: &[&str], vars: &[(&str, &str)], stdin: &[u8]) -> Finished {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(vars.iter().copied())
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
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut raw = Vec::new();
            let _ = pipe.read_to_end(&mut raw);
            String::from_utf8_lossy(&raw).into_owned()
        })
    }
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = wait_timeout(&mut child, PATIENCE);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = writer.join();
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    let Some(status) = status else {
        panic!(
            "`logward {}` did not exit within {PATIENCE:?}\n--- stderr ---\n{stderr}",
            args.join(" ")
        );
    };
    Finished {
        status,
        stdout,
        stderr,
    }
}

/// Numbered lines `prefix-000000` .. for loss and duplication checks.
pub fn numbered(prefix: &str, from: usize, to: usize) -> String {
    (from..to).map(|i| format!("{prefix}-{i:06}\n")).collect()
}

/// A loopback address that was free a moment ago (bound to port 0, then dropped).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
}

/// The `[http]` table for a config's top level, listening on `addr`.
pub fn http_table(addr: SocketAddr) -> String {
    format!("[http]\nlisten = \"{addr}\"\n")
}

/// `GET path` over HTTP/1.1: the status code and body, or an error while the
/// endpoint is not up (yet).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, &[], "").map(|a| (a.status, a.body))
}

/// An HTTP answer: status, headers (names in lower case) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// `METHOD path` over HTTP/1.1 with extra `headers` and a `body` (sent when not empty).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(PATIENCE))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head}")))?;
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of one Prometheus sample, e.g. `logward_lines_read_total{source="test"}`.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let value = l.strip_prefix(series)?.strip_prefix(' ')?;
        value.split(' ').next()?.parse().ok()
    })
}

/// One look at the agent's current value of one metric series: `None` while
/// `/metrics` does not answer 200 or lacks the series.
pub fn try_metric(addr: SocketAddr, series: &str) -> Option<f64> {
    let (status, body) = http_get(addr, "/metrics").ok()?;
    (status == 200).then(|| sample(&body, series)).flatten()
}

/// The agent's current value of one metric series, once `/metrics` answers.
pub fn metric(agent: &Agent, addr: SocketAddr, series: &str) -> f64 {
    wait_until(&format!("{series} on /metrics"), agent, || {
        try_metric(addr, series)
    })
}

/// The byte offset where each line of `content` starts.
pub fn line_offsets(content: &[u8]) -> Vec<u64> {
    let mut offsets = vec![0];
    offsets.extend(
        content
            .iter()
            .enumerate()
            .filter(|(i, b)| **b == b'\n' && i + 1 < content.len())
            .map(|(i, _)| i as u64 + 1),
    );
    offsets
}

/// Writes `content` to `logs/app.log`, runs the agent on it with `source_extra`
/// until `expected` events are out, stops it (exit 0), and returns the events:
/// exactly `expected` of them.
pub fn tail_once(source_extra: &str, content: &[u8], expected: usize) -> Vec<Value> {
    let env = Env::new();
    std::fs::write(env.logs().join("app.log"), content).expect("write log");
    let config = env.config(source_extra);
    let agent = env.start(&config);
    env.wait_for_events(expected, &agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "agent exited with {status}\n{stderr}");
    let events = env.events();
    assert_eq!(
        events.len(),
        expected,
        "events: {events:#?}\n--- agent stderr ---\n{stderr}"
    );
    events
}
