//! Helpers shared by the integration tests beyond `common`: the agent's HTTP
//! endpoint (free port, plain HTTP/1.1 GET, Prometheus samples), waiting for a
//! condition with a deadline, counting big outputs, tailing one file once, and
//! running `logward` to completion with an environment and a time limit.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Agent, BIN, PATIENCE, wait_timeout};

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
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(PATIENCE))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head}")))?;
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
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

/// The agent's current value of one metric series, once `/metrics` answers.
pub fn metric(agent: &Agent, addr: SocketAddr, series: &str) -> f64 {
    wait_until(&format!("{series} on /metrics"), agent, || {
        let (status, body) = http_get(addr, "/metrics").ok()?;
        (status == 200).then(|| sample(&body, series)).flatten()
    })
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

/// Runs `logward ARGS` with `env` set and `stdin` piped in (then closed), and
/// waits for it to exit by itself; panics with its stderr after `PATIENCE`.
/// Output goes through files in `dir`, so nothing blocks on a full pipe.
pub fn run_to_exit(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Finished {
    let tag = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let out_path = dir.join(format!("run-{tag}.stdout"));
    let err_path = dir.join(format!("run-{tag}.stderr"));
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start logward");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let status = wait_timeout(&mut child, PATIENCE);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = writer.join();
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let (stdout, stderr) = (read(&out_path), read(&err_path));
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
pub fn tail_once(source_extra: &str, content: &[u8], expected: usize) -> Vec<serde_json::Value> {
    let env = crate::common::Env::new();
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

/// Waits until the output holds at least `n` complete lines, counting
/// newlines only and reading each byte once: for big outputs, where parsing
/// (or re-reading) everything on every poll is slow. Gives up when the output
/// has not grown for `PATIENCE`: a big volume on a loaded machine may take
/// longer than that in all, but never stalls that long.
pub fn wait_for_output_lines(env: &crate::common::Env, agent: &Agent, n: usize) {
    let (mut seen, mut count) = (0u64, 0);
    let mut buf = vec![0u8; 1 << 20];
    let mut deadline = Instant::now() + PATIENCE;
    while count < n {
        let grew = std::fs::File::open(env.out()).is_ok_and(|mut f| {
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
