//! Shipping to Grafana Loki, through `logward run` against a Loki-compatible server
//! (`common/loki_server.rs`) that decodes the real wire formats and validates as Loki does:
//! the protobuf and JSON bodies, labels and structured metadata, retries and drops, what an
//! outage (and `kill -9` during one) does, positions that wait for Loki, bounded memory, the
//! tenant header, and the label guard of `logward check`.

mod common;
#[path = "common/loki_server.rs"]
mod loki_server;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{
    Agent, Config, Env, PATIENCE, free_addr, http_table, metric, run_to_exit, try_metric,
    wait_until,
};
use loki_server::{Answer, Entry, LokiServer};

/// What every test's `[loki]` has besides `extra`: fast batching and retries.
fn loki_table(server: &LokiServer, extra: &str) -> String {
    format!(
        "[loki]\nurl = \"{}\"\nbatch_wait = \"50ms\"\nmin_backoff = \"20ms\"\nmax_backoff = \"300ms\"\n{extra}\n",
        server.url()
    )
}

/// An env whose source reads JSON lines, shipping to `server` with `extra` keys in `[loki]`,
/// and an HTTP endpoint for metrics. Returns the config and the endpoint.
fn setup(env: &Env, server: &LokiServer, extra: &str) -> (std::path::PathBuf, SocketAddr) {
    let addr = free_addr();
    let top = format!("{}{}", http_table(addr), loki_table(server, extra));
    let config = env.config_with(Config {
        top_extra: &top,
        source_extra: "format = \"json\"\nlabels = { job = \"ci\" }",
        ..Config::default()
    });
    (config, addr)
}

/// JSON log lines `{prefix}-{i}` for `from..to`, each with its own time (now, one
/// microsecond apart), level, service and run id.
fn json_lines(prefix: &str, from: usize, to: usize) -> String {
    let base = chrono::Utc::now();
    (from..to)
        .map(|i| {
            let ts = base + chrono::Duration::microseconds(i as i64);
            format!(
                "{{\"time\":\"{}\",\"level\":\"error\",\"service\":\"api\",\"msg\":\"{prefix}-{i:06}\",\"ci_run_id\":\"77\"}}\n",
                ts.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            )
        })
        .collect()
}

/// The `msg` of each entry whose line is a JSON object, in arrival order.
fn messages(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.line).ok())
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .collect()
}

fn expected(prefix: &str, from: usize, to: usize) -> BTreeSet<String> {
    (from..to).map(|i| format!("{prefix}-{i:06}")).collect()
}

/// Every message `from..to` is stored, exactly once.
fn assert_all_once(server: &LokiServer, prefix: &str, from: usize, to: usize) {
    let got = messages(&server.entries());
    let mine: Vec<&String> = got.iter().filter(|m| m.starts_with(prefix)).collect();
    let unique: BTreeSet<String> = mine.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        unique,
        expected(prefix, from, to),
        "missing or unexpected entries"
    );
    assert_eq!(mine.len(), to - from, "duplicated entries");
}

/// The delivered offset of `logs/app.log` in `state/positions.json`.
fn saved_offset(env: &Env) -> Option<u64> {
    let text = fs::read_to_string(env.path("state/positions.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["files"]
        .as_array()?
        .iter()
        .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with("app.log")))
        .and_then(|f| f["offset"].as_u64())
}

fn wait_entries(server: &LokiServer, n: usize, agent: &Agent) -> Vec<Entry> {
    server.wait_entries(n, PATIENCE, || agent.stderr())
}

#[test]
fn protobuf_push_decodes_with_logproto() {
    let server = LokiServer::start();
    let env = Env::new();
    let (config, _) = setup(&env, &server, "");
    let agent = env.start(&config);
    let lines = json_lines("pb", 0, 50);
    // A line over Loki's max_line_size (256 KiB) is cut before it is sent.
    let long = format!(
        "{{\"msg\":\"long\",\"pad\":\"{}\"}}\n",
        "x".repeat(300 * 1024)
    );
    env.append("app.log", &(lines.clone() + &long));
    let entries = wait_entries(&server, 51, &agent);

    let first = &entries[0];
    assert_eq!(
        first.line,
        lines.lines().next().unwrap(),
        "the line as written"
    );
    let own: &str = &lines[9..9 + 30];
    let own_ns = chrono::DateTime::parse_from_rfc3339(own)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap();
    assert_eq!(first.ts, own_ns, "the event's own time, to the nanosecond");
    let labels: Vec<(&str, &str)> = first
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let host = labels
        .iter()
        .find(|(k, _)| *k == "host")
        .map(|(_, v)| *v)
        .unwrap_or("");
    assert!(!host.is_empty(), "{labels:?}");
    assert_eq!(
        labels,
        [
            ("host", host),
            ("job", "ci"),
            ("kind", "json"), // the static label of the bundled JSON pattern
            ("level", "error"),
            ("service", "api"),
            ("source", "test")
        ]
    );
    assert_eq!(
        first.metadata.get("ci_run_id").map(String::as_str),
        Some("77")
    );
    assert_eq!(first.metadata.get("fingerprint").map(String::len), Some(16));
    assert_all_once(&server, "pb", 0, 50);

    let cut = entries
        .iter()
        .find(|e| e.line.starts_with("{\"msg\":\"long\""))
        .expect("the long line");
    assert_eq!(cut.line.len(), 256 * 1024);
    assert_eq!(
        cut.metadata.get("truncated").map(String::as_str),
        Some("true")
    );

    let req = &server.requests()[0];
    assert_eq!(req.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(
        req.header("content-encoding"),
        None,
        "snappy is inside the body, not an encoding"
    );
    assert_eq!(req.status, 204);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn json_encoding_matches_api() {
    let server = LokiServer::start();
    let env = Env::new();
    let (config, _) = setup(&env, &server, "encoding = \"json\"");
    let agent = env.start(&config);
    let lines = json_lines("js", 0, 20);
    env.append("app.log", &lines);
    let entries = wait_entries(&server, 20, &agent);
    assert_all_once(&server, "js", 0, 20);
    assert_eq!(entries[3].line, lines.lines().nth(3).unwrap());
    assert_eq!(
        entries[3].labels.get("service").map(String::as_str),
        Some("api")
    );
    assert_eq!(
        entries[3].metadata.get("ci_run_id").map(String::as_str),
        Some("77")
    );
    let req = &server.requests()[0];
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert!(
        server.requests().iter().all(|r| r.status == 204),
        "{:#?}",
        server.requests()
    );
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn labels_and_structured_metadata() {
    let server = LokiServer::start();
    let env = Env::new();
    let addr = free_addr();
    let top = format!(
        "{}{}",
        http_table(addr),
        loki_table(
            &server,
            "labels = [\"level\", \"service\", \"env\"]\nstructured_metadata = [\"ci_run_id\", \"trace_id\"]"
        )
    );
    let config = env.config_with(Config {
        top_extra: &top,
        source_extra: "format = \"json\"\nlabels = { \"team-name\" = \"builds\", env = \"static\" }",
        ..Config::default()
    });
    let agent = env.start(&config);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    env.append(
        "app.log",
        &format!(
            concat!(
                "{{\"time\":\"{now}\",\"level\":\"warn\",\"service\":\"db\",\"msg\":\"slow\",\"ci_run_id\":\"4711\",\"trace_id\":\"abc\",\"env\":\"prod\"}}\n",
                "{{\"time\":\"2020-01-01T00:00:00Z\",\"level\":\"info\",\"service\":\"db\",\"msg\":\"old\"}}\n",
                "plain text, no time of its own\n",
            ),
            now = now
        ),
    );
    let entries = wait_entries(&server, 3, &agent);
    let by_msg = |m: &str| {
        entries
            .iter()
            .find(|e| e.line.contains(m))
            .unwrap_or_else(|| panic!("no {m} in {entries:#?}"))
    };

    let slow = by_msg("slow");
    let names: Vec<&str> = slow.labels.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "env",
            "host",
            "kind",
            "level",
            "service",
            "source",
            "team_name"
        ],
        "sanitized, sorted"
    );
    assert_eq!(
        slow.labels["env"], "prod",
        "a promoted field wins over the static label"
    );
    assert_eq!(slow.labels["team_name"], "builds");
    assert_eq!(
        slow.metadata,
        [("ci_run_id", "4711"), ("trace_id", "abc")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    );

    // An event whose own time Loki would refuse (older than max_sample_age) goes with its read
    // time; its own time is kept in structured metadata.
    let old = by_msg("old");
    assert_eq!(
        old.metadata.get("original_timestamp").map(String::as_str),
        Some("2020-01-01T00:00:00Z")
    );
    let age = chrono::Utc::now().timestamp_nanos_opt().unwrap() - old.ts;
    assert!(
        (0..60_000_000_000).contains(&age),
        "stamped with its read time: {age} ns ago"
    );
    assert_eq!(old.labels["env"], "static");

    let plain = by_msg("plain text");
    assert!(
        !plain.labels.contains_key("level"),
        "no level, no label: {:?}",
        plain.labels
    );
    assert!(plain.metadata.is_empty(), "{:?}", plain.metadata);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_loki_2_without_structured_metadata_gets_it_as_logfmt_in_the_line() {
    let server = LokiServer::start();
    server.refuse_metadata();
    let env = Env::new();
    let (config, addr) = setup(&env, &server, "structured_metadata = [\"ci_run_id\"]");
    let agent = env.start(&config);
    env.append("app.log", &json_lines("v2", 0, 5));
    let entries = wait_entries(&server, 5, &agent);
    assert!(
        entries[0].line.ends_with("} ci_run_id=77"),
        "{}",
        entries[0].line
    );
    assert!(entries.iter().all(|e| e.metadata.is_empty()));
    assert!(agent.stderr().contains("Loki refuses structured metadata"));
    assert_eq!(
        metric(&agent, addr, "logward_loki_entries_total{result=\"sent\"}"),
        5.0
    );
    assert_eq!(
        try_metric(addr, "logward_loki_entries_total{result=\"dropped\"}"),
        None
    );
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn retry_on_429_honours_retry_after() {
    let server = LokiServer::start();
    server.then(Answer::Status {
        status: 429,
        body: "Ingestion rate limit exceeded for user fake".into(),
        retry_after: Some("2".into()),
    });
    let env = Env::new();
    let (config, addr) = setup(&env, &server, "");
    let agent = env.start(&config);
    env.append("app.log", &json_lines("rl", 0, 10));
    wait_entries(&server, 10, &agent);
    let requests = server.requests();
    assert_eq!(requests[0].status, 429);
    let waited = requests[1].at - requests[0].at;
    // min_backoff is 20 ms: only Retry-After makes the retry wait this long.
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}"
    );
    assert_all_once(&server, "rl", 0, 10);
    assert!(metric(&agent, addr, "logward_loki_retries_total") >= 1.0);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn no_retry_on_400_counts_drop() {
    let server = LokiServer::start();
    server.then(Answer::Status {
        status: 400,
        body: "entry for stream '{job=\"ci\"}' has timestamp too new".into(),
        retry_after: None,
    });
    let env = Env::new();
    let (config, addr) = setup(&env, &server, "");
    let agent = env.start(&config);
    env.append("app.log", &json_lines("bad", 0, 7));
    let series = "logward_loki_dropped_entries_total{reason=\"rejected\"}";
    wait_until("the refused push to be counted", &agent, || {
        (try_metric(addr, series)? >= 7.0).then_some(())
    });
    assert_eq!(metric(&agent, addr, series), 7.0);
    assert!(
        agent.stderr().contains("has timestamp too new"),
        "Loki's answer is logged"
    );
    // The pipeline goes on, and the refused lines do not hold the position back.
    let more = json_lines("good", 0, 3);
    env.append("app.log", &more);
    wait_entries(&server, 3, &agent);
    assert_all_once(&server, "good", 0, 3);
    assert_eq!(
        server.requests().iter().filter(|r| r.status == 400).count(),
        1,
        "never retried"
    );
    let size = fs::metadata(env.logs().join("app.log")).unwrap().len();
    wait_until("the position to pass the dropped lines", &agent, || {
        (saved_offset(&env) == Some(size)).then_some(())
    });
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
}

/// The outage lasts 5 s here rather than 60 s: retries back off to `max_backoff` (300 ms) long
/// before, so a longer one only repeats the same retries.
#[test]
fn loki_down_60s_loses_nothing() {
    let mut server = LokiServer::start();
    let env = Env::new();
    let (config, addr) = setup(&env, &server, "");
    let agent = env.start(&config);
    env.append("app.log", &json_lines("before", 0, 100));
    wait_entries(&server, 100, &agent);
    server.stop();
    let outage = Instant::now();
    for chunk in 0..10 {
        env.append(
            "app.log",
            &json_lines("during", chunk * 200, (chunk + 1) * 200),
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_until("the agent to retry", &agent, || {
        (try_metric(addr, "logward_loki_retries_total")? >= 3.0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(5).saturating_sub(outage.elapsed()));
    server.restart();
    wait_entries(&server, 2100, &agent);
    assert_all_once(&server, "before", 0, 100);
    assert_all_once(&server, "during", 0, 2000);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn kill_9_during_outage_loses_nothing() {
    let server = LokiServer::start();
    server.always(Some(Answer::status(503)));
    let env = Env::new();
    let (config, addr) = setup(&env, &server, "");
    let agent = env.start(&config);
    env.append("app.log", &json_lines("k9", 0, 500));
    wait_until("pushes to be refused", &agent, || {
        (try_metric(addr, "logward_loki_retries_total")? >= 2.0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300)); // a checkpoint or two pass
    agent.kill9();
    assert!(server.entries().is_empty());
    server.always(None);
    let agent = env.start(&config);
    wait_entries(&server, 500, &agent);
    assert_all_once(&server, "k9", 0, 500);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn positions_wait_for_loki_ack() {
    let server = LokiServer::start();
    server.always(Some(Answer::status(500)));
    let env = Env::new();
    let (config, addr) = setup(&env, &server, "");
    let agent = env.start(&config);
    env.append("app.log", &json_lines("ack", 0, 200));
    let size = fs::metadata(env.logs().join("app.log")).unwrap().len();
    wait_until("the agent to read and push the lines", &agent, || {
        (try_metric(addr, "logward_loki_retries_total")? >= 3.0).then_some(())
    });
    // The file output took the lines at once; Loki did not: the position stays.
    common::wait_until("the output file to hold the lines", &agent, || {
        (env.events().len() == 200).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500)); // several checkpoint intervals
    assert_eq!(
        saved_offset(&env).unwrap_or(0),
        0,
        "position moved before Loki took the lines"
    );
    server.always(None);
    wait_entries(&server, 200, &agent);
    wait_until("the position to reach the end of the file", &agent, || {
        (saved_offset(&env) == Some(size)).then_some(())
    });
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
}

/// Resident memory of `pid` now, in bytes.
fn rss(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn memory_bounded_during_outage() {
    const WRITE: u64 = 120 << 20;
    const LIMIT: u64 = 160 << 20;
    let mut server = LokiServer::start();
    let env = Env::new();
    let (config, addr) = setup(&env, &server, "");
    let agent = env.start(&config);
    common::wait_ready(&agent);
    server.stop();
    let baseline = rss(agent.pid());
    let line = format!(
        "{{\"level\":\"info\",\"service\":\"api\",\"msg\":\"filler {}\"}}\n",
        "y".repeat(400)
    );
    let chunk = line.repeat(2048);
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.logs().join("app.log"))
        .unwrap();
    let (mut written, mut peak) = (0u64, 0u64);
    while written < WRITE {
        file.write_all(chunk.as_bytes()).unwrap();
        written += chunk.len() as u64;
        peak = peak.max(rss(agent.pid()));
    }
    // Reading goes on until every buffer is full, then pauses: watch it settle.
    let mut last = 0.0;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(200));
        peak = peak.max(rss(agent.pid()));
        let read = try_metric(addr, "logward_bytes_read_total{source=\"test\"}").unwrap_or(0.0);
        if read == last && read > 0.0 {
            break;
        }
        last = read;
    }
    let read = metric(&agent, addr, "logward_bytes_read_total{source=\"test\"}") as u64;
    assert!(
        read < written / 2,
        "reading did not pause: {read} of {written} bytes read"
    );
    assert!(
        peak < LIMIT,
        "peak RSS {} MiB (baseline {} MiB) while {} MiB were written during the outage",
        peak >> 20,
        baseline >> 20,
        written >> 20
    );
    server.restart();
    wait_until("reading to resume after the outage", &agent, || {
        (try_metric(addr, "logward_bytes_read_total{source=\"test\"}")? > read as f64).then_some(())
    });
}

#[test]
fn tenant_header_sent() {
    let server = LokiServer::start();
    server.require_tenant();
    let env = Env::new();
    let (config, _) = setup(
        &env,
        &server,
        "tenant = \"builds\"\nusername = \"logward\"\npassword = \"${LOKI_TEST_PASSWORD}\"\nheaders = { X-Team = \"ci\" }",
    );
    let agent = env.start_with(&config, &[("LOKI_TEST_PASSWORD", "pa55-w0rd")]);
    env.append("app.log", &json_lines("tn", 0, 3));
    let entries = wait_entries(&server, 3, &agent);
    assert!(
        entries
            .iter()
            .all(|e| e.tenant.as_deref() == Some("builds"))
    );
    let req = &server.requests()[0];
    assert_eq!(req.header("x-scope-orgid"), Some("builds"));
    assert_eq!(req.header("x-team"), Some("ci"));
    // base64("logward:pa55-w0rd")
    assert_eq!(
        req.header("authorization"),
        Some("Basic bG9nd2FyZDpwYTU1LXcwcmQ=")
    );
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("pa55-w0rd"));
}

#[test]
fn a_missing_tenant_is_retried_not_dropped() {
    let server = LokiServer::start();
    server.require_tenant();
    let env = Env::new();
    let (config, addr) = setup(&env, &server, "");
    let agent = env.start(&config);
    env.append("app.log", &json_lines("nt", 0, 3));
    wait_until("the 401 to be retried", &agent, || {
        (try_metric(addr, "logward_loki_retries_total")? >= 2.0).then_some(())
    });
    assert!(
        agent
            .stderr()
            .contains("check the url, tenant and credentials of [loki]")
    );
    assert!(server.entries().is_empty());
    assert_eq!(saved_offset(&env).unwrap_or(0), 0);
}

#[test]
fn high_cardinality_label_refused() {
    let env = Env::new();
    let write = |labels: &str| {
        env.config_with(Config {
            top_extra: &format!("[loki]\nurl = \"http://127.0.0.1:3100\"\nlabels = {labels}\n"),
            ..Config::default()
        })
    };
    let config = write("[\"service\", \"ci_run_id\"]");
    let path = config.display().to_string();
    let done = run_to_exit(&["check", "-c", &path], &[], b"");
    assert_eq!(done.status.code(), Some(1), "{}", done.all_output());
    let expected = format!(
        "{path}:6:22: `ci_run_id` cannot be a label: its values change with every run or event, and each value would be a stream of its own — send it as structured metadata instead: structured_metadata = [\"ci_run_id\"] (Loki 3+)"
    );
    assert!(done.stdout.contains(&expected), "{}", done.stdout);

    let config = write("[\"service\", \"request_id\"]");
    let done = run_to_exit(&["check", "-c", &config.display().to_string()], &[], b"");
    assert_eq!(done.status.code(), Some(0), "{}", done.all_output());
    assert!(
        done.stdout.contains(&format!(
            "warning: {path}:6:22: `request_id` looks like it takes many values"
        )),
        "{}",
        done.stdout
    );
}

#[test]
fn a_hanging_push_times_out_and_is_retried() {
    let server = LokiServer::start();
    server.then(Answer::Hang);
    let env = Env::new();
    let (config, addr) = setup(&env, &server, "timeout = \"500ms\"");
    let agent = env.start(&config);
    env.append("app.log", &json_lines("hang", 0, 5));
    wait_entries(&server, 5, &agent);
    assert_all_once(&server, "hang", 0, 5);
    assert!(metric(&agent, addr, "logward_loki_retries_total") >= 1.0);
    assert!(
        agent.stderr().contains("timed out"),
        "the timeout is logged"
    );
}

/// HTTPS to a Loki whose certificate a private CA signed: refused without `ca_file` (the
/// system's roots do not hold the CA; retried, nothing sent), taken with it. This also runs
/// the binary's rustls set-up (one crypto provider) through a real handshake.
#[test]
fn https_with_a_custom_ca() {
    let ca = common::tls::TestCa::new();
    let server = LokiServer::start_tls(&ca.cert, &ca.key);
    assert!(server.url().starts_with("https://localhost:"));
    let env = Env::new();
    let (config, _) = setup(&env, &server, "");
    let agent = env.start(&config);
    env.append("app.log", &json_lines("tls", 0, 4));
    wait_until("the untrusted certificate to be reported", &agent, || {
        agent.stderr().contains("certificate").then_some(())
    });
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert!(server.entries().is_empty());

    let (config, _) = setup(&env, &server, &format!("ca_file = \"{}\"", ca.ca.display()));
    let agent = env.start(&config);
    wait_entries(&server, 4, &agent);
    assert_all_once(&server, "tls", 0, 4);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
