//! The `alertmanager` receiver against the real `prometheus-alertmanager` (Debian package),
//! started here on free ports with a null receiver, no clustering and its storage in a temp
//! directory; what it holds is read back through `GET /api/v2/alerts` and `/api/v2/alerts/groups`.
//! Sender-level tests, then `logward run` delivering to it (`tests/common/delivery.rs`).

#[path = "common/chat_server.rs"]
mod chat_server;
mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logward::config::{self, Config, ReceiverKind};
use logward::escalation::{Escalation, Kind, Sample};
use logward::event::{Fingerprint, Level, Timestamp};
use logward::notify::alertmanager::Alertmanager;
use logward::notify::{Outcome, Sender};
use serde_json::{Map, Value, json};

const BINARY: &str = "prometheus-alertmanager";

fn binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(BINARY))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{BINARY}` is not installed: run `apt-get install prometheus-alertmanager` \
             (scripts/test does it), then run the tests again"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One Alertmanager, killed on drop.
struct Am {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Am {
    fn start() -> Am {
        Am::start_on(free_port())
    }

    /// An Alertmanager on `port` (one a receiver was pointed at while it was down).
    fn start_on(port: u16) -> Am {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(
            &cfg,
            "route:\n  receiver: 'null'\n  group_by: [alertname]\nreceivers:\n  - name: 'null'\n",
        )
        .unwrap();
        let child = Command::new(binary())
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let am = Am {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = reqwest::blocking::get(format!("{}/-/ready", am.url))
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return am;
            }
            assert!(Instant::now() < deadline, "alertmanager never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn get(&self, path: &str) -> Value {
        reqwest::blocking::get(format!("{}{path}", self.url))
            .unwrap()
            .json()
            .unwrap()
    }

    fn alerts(&self) -> Vec<Value> {
        self.get("/api/v2/alerts").as_array().unwrap().clone()
    }
}

impl Drop for Am {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The receiver `am` of a config with `keys` in its table, and one route `errors` to it.
fn receiver(keys: &str) -> config::Alertmanager {
    let text = format!(
        "[receiver.am]\ntype = \"alertmanager\"\n{keys}\n[[route]]\nname = \"errors\"\nreceivers = [\"am\"]\nwindow = \"10m\"\n"
    );
    let cfg = Config::parse(Path::new("logward.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    match &cfg.receivers["am"].kind {
        ReceiverKind::Alertmanager(am) => am.clone(),
        other => panic!("{other:?}"),
    }
}

fn sender(keys: &str) -> Alertmanager {
    Alertmanager::new(Arc::from("am"), &receiver(keys))
}

fn urls(ams: &[&Am]) -> String {
    let list: Vec<String> = ams.iter().map(|a| format!("\"{}\"", a.url)).collect();
    format!("urls = [{}]", list.join(", "))
}

/// Whole seconds, so that they read back equal whatever precision the server prints.
fn secs_ago(s: i64) -> Timestamp {
    let now = Timestamp::now().as_nanos() / 1_000_000_000;
    Timestamp::from_nanos((now - s) * 1_000_000_000)
}

fn escalation(host: &str, kind: Kind, first: Timestamp, last: Timestamp) -> Escalation {
    let sample = Sample {
        ts: first,
        source: "jenkins".into(),
        path: Some("/var/lib/jenkins/jobs/api/builds/4711/log".into()),
        offset: 0,
        line: "ERROR db timeout after 30s\n\tat com.example.Db.query(Db.java:42)".into(),
        level: Some(Level::Error),
        service: Some("api".into()),
        ci_run_id: Some("4711".into()),
        pattern: Some("java.exception".into()),
        matched: true,
        message: Some("db timeout after 30s".into()),
        template: None,
        fingerprint: Some(Fingerprint(0xab)),
        fields: Map::new(),
        labels: Arc::new(BTreeMap::from([("job".into(), "jenkins".into())])),
    };
    Escalation {
        route: "errors".into(),
        receiver: "am".into(),
        kind,
        group: Map::from_iter([("fingerprint".into(), Value::from("00000000000000ab"))]),
        fingerprint: Some(Fingerprint(0xab)),
        level: Some(Level::Error),
        service: Some("api".into()),
        ci_run_id: Some("4711".into()),
        pattern: Some("java.exception".into()),
        message: Some("db timeout after 30s".into()),
        count: 5,
        suppressed: 4,
        first_seen: first,
        last_seen: last,
        sample,
        context: vec!["INFO connecting to db".into()],
        loki_query: "{job=\"jenkins\"} |= \"ERROR db timeout after\"".into(),
        host: host.into(),
        mention: Vec::new(),
    }
}

fn time(v: &Value) -> Timestamp {
    Timestamp::parse_rfc3339(v.as_str().unwrap()).unwrap()
}

fn accepted(o: Outcome) -> String {
    match o {
        Outcome::Accepted { answer } => answer,
        other => panic!("not accepted: {other:?}"),
    }
}

#[test]
fn alertmanager_wire_format() {
    let am = Am::start();
    let mut s = sender(&format!("{}\nresolve_after = \"30m\"", urls(&[&am])));
    let (first, last) = (secs_ago(120), secs_ago(10));
    let answer = accepted(s.send(&escalation("build-01", Kind::First, first, last), "k1"));
    assert_eq!(answer, "alertmanager 1 of 1: 200 OK");

    let alerts = am.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(
        a["labels"],
        json!({"alertname": "java.exception", "route": "errors", "fingerprint": "00000000000000ab",
               "service": "api", "severity": "error"}),
        "host and ci_run_id are not labels unless configured"
    );
    let n = &a["annotations"];
    assert_eq!(n["host"], "build-01");
    assert_eq!(n["message"], "db timeout after 30s");
    assert_eq!(
        n["sample"],
        "ERROR db timeout after 30s\n\\tat com.example.Db.query(Db.java:42)"
    );
    assert_eq!(n["count"], "5");
    assert_eq!(n["suppressed"], "4");
    assert_eq!(n["kind"], "first");
    assert_eq!(n["ci_run_id"], "4711");
    assert_eq!(n["context"], "INFO connecting to db");
    assert_eq!(
        n["loki_query"],
        "{job=\"jenkins\"} |= \"ERROR db timeout after\""
    );
    assert_eq!(n["summary"], "5 error in api: db timeout after 30s");
    assert_eq!(time(&a["startsAt"]), first);
    let ends = Timestamp::from_nanos(last.as_nanos() + 30 * 60 * 1_000_000_000);
    assert_eq!(time(&a["endsAt"]), ends);
    assert_eq!(a["status"]["state"], "active");

    // A summary re-sends the same alert (same labels) and moves its end on; it does not resolve it.
    let later = secs_ago(0);
    accepted(s.send(&escalation("build-01", Kind::Summary, first, later), "k2"));
    let alerts = am.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["annotations"]["kind"], "summary");
    assert_eq!(
        time(&alerts[0]["endsAt"]),
        Timestamp::from_nanos(later.as_nanos() + 30 * 60 * 1_000_000_000)
    );
    assert_eq!(time(&alerts[0]["startsAt"]), first);
}

/// Every line of the hostile corpus, as service, message, sample, run id and context: the
/// real Alertmanager takes each alert and holds exactly the labels and annotations logward
/// built, byte for byte. Alertmanager's API and its notification templates treat them as plain
/// strings; no line adds a label, changes the alert's name or is refused.
#[test]
fn alertmanager_hostile_lines_arrive_as_plain_label_and_annotation_values() {
    let am = Am::start();
    let cfg = receiver(&urls(&[&am]));
    let mut s = Alertmanager::new(Arc::from("am"), &cfg);
    let lines = chat_server::hostile_lines();
    let mut sent = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let mut esc = chat_server::escalation(line);
        esc.receiver = "am".into();
        (esc.first_seen, esc.last_seen) = (secs_ago(60), secs_ago(0));
        esc.fingerprint = Some(Fingerprint(i as u64 + 1));
        esc.group = Map::from_iter([("fingerprint".into(), json!(format!("{:016x}", i + 1)))]);
        let built = logward::notify::alertmanager::alert(&esc, &cfg);
        accepted(s.send(&esc, "k"));
        sent.insert(built.labels["fingerprint"].clone(), built);
    }
    let held = am.alerts();
    assert_eq!(held.len(), lines.len(), "one alert per line");
    for a in &held {
        let fingerprint = a["labels"]["fingerprint"].as_str().unwrap();
        let built = &sent[fingerprint];
        assert_eq!(a["labels"], json!(built.labels), "labels as built");
        assert_eq!(
            a["annotations"],
            json!(built.annotations),
            "annotations as built"
        );
        assert_eq!(a["labels"]["alertname"], "java.exception");
    }
}

#[test]
fn alertmanager_labels_from_adds_only_what_is_configured() {
    let am = Am::start();
    let mut s = sender(&format!(
        "{}\nlabels_from = [\"ci_run_id\", \"job\"]",
        urls(&[&am])
    ));
    accepted(s.send(
        &escalation("build-01", Kind::First, secs_ago(60), secs_ago(1)),
        "k",
    ));
    let alerts = am.alerts();
    assert_eq!(alerts[0]["labels"]["ci_run_id"], "4711");
    assert_eq!(alerts[0]["labels"]["job"], "jenkins");
    assert!(alerts[0]["labels"].get("host").is_none());
}

#[test]
fn alertmanager_resolves_when_the_group_goes_quiet() {
    let am = Am::start();
    let mut s = sender(&format!("{}\nresolve_after = \"1m\"", urls(&[&am])));
    // The last event was 58 s ago: the alert ends 2 s from now unless re-sent.
    let last = secs_ago(58);
    accepted(s.send(
        &escalation("build-01", Kind::First, secs_ago(90), last),
        "k",
    ));
    assert_eq!(am.alerts().len(), 1);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        am.alerts().len(),
        0,
        "a quiet group's alert resolves by itself"
    );
}

#[test]
fn alertmanager_two_agents_one_alert() {
    let am = Am::start();
    let mut a = sender(&urls(&[&am]));
    let mut b = sender(&urls(&[&am]));
    let first_a = secs_ago(300);
    accepted(a.send(
        &escalation("build-01", Kind::First, first_a, secs_ago(200)),
        "a",
    ));
    accepted(b.send(
        &escalation("build-02", Kind::First, secs_ago(100), secs_ago(5)),
        "b",
    ));
    let groups = am.get("/api/v2/alerts/groups");
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    let alerts = groups[0]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "two agents, one alert: {alerts:?}");
    assert_eq!(
        alerts[0]["annotations"]["host"], "build-02",
        "the last one spoke"
    );
    assert_eq!(
        time(&alerts[0]["startsAt"]),
        first_a,
        "the earliest start is kept"
    );
    assert_eq!(am.alerts().len(), 1);
}

#[test]
fn alertmanager_ha_pair_both_receive() {
    let (one, two) = (Am::start(), Am::start());
    let mut s = sender(&urls(&[&one, &two]));
    let answer = accepted(s.send(
        &escalation("build-01", Kind::First, secs_ago(60), secs_ago(1)),
        "k",
    ));
    assert_eq!(
        answer,
        "alertmanager 1 of 2: 200 OK; alertmanager 2 of 2: 200 OK"
    );
    assert_eq!(one.alerts().len(), 1);
    assert_eq!(two.alerts().len(), 1);

    // One of the pair down: still delivered, and the answer says which one failed.
    let down = format!("http://127.0.0.1:{}", free_port());
    let mut s = sender(&format!("urls = [\"{down}\", \"{}\"]", one.url));
    let answer = accepted(s.send(
        &escalation("build-01", Kind::Repeat, secs_ago(60), secs_ago(0)),
        "k",
    ));
    assert!(
        answer.starts_with("alertmanager 1 of 2: POST failed: cannot connect"),
        "{answer}"
    );
    assert!(answer.ends_with("alertmanager 2 of 2: 200 OK"), "{answer}");
    assert!(!answer.contains("127.0.0.1"), "{answer}");
}

#[test]
fn alertmanager_invalid_alert_is_rejected_not_retried() {
    let am = Am::start();
    let mut s = sender(&format!("{}\nresolve_after = \"1m\"", urls(&[&am])));
    // Starts after it ends: Alertmanager answers 400.
    let esc = escalation("build-01", Kind::First, secs_ago(0), secs_ago(3600));
    match s.send(&esc, "k") {
        Outcome::Rejected { reason } => {
            assert!(
                reason.starts_with("alertmanager 1 of 1: 400 Bad Request"),
                "{reason}"
            );
            assert!(
                reason.contains("start time must be before end time"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(am.alerts().is_empty());
}

#[test]
fn alertmanager_down_is_retried() {
    let mut s = sender(&format!(
        "urls = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{}/prefix/\"]",
        free_port(),
        free_port()
    ));
    match s.send(
        &escalation("build-01", Kind::First, secs_ago(60), secs_ago(1)),
        "k",
    ) {
        Outcome::Retry {
            after: None,
            reason,
        } => {
            assert!(
                reason.contains("alertmanager 2 of 2: POST failed: cannot connect"),
                "{reason}"
            );
            assert!(
                !reason.contains("127.0.0.1") && !reason.contains("prefix"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn alertmanager_credentials_never_shown() {
    let am = Am::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "s3cr3t-bearer-token\n").unwrap();
    let down = format!("http://127.0.0.1:{}", free_port());
    let cfg = receiver(&format!(
        "urls = [\"{down}\", \"{}\"]\nbearer_token_file = \"{}\"",
        am.url,
        file.display()
    ));
    let mut shown = format!("{cfg:?}");
    let mut s = Alertmanager::new(Arc::from("am"), &cfg);
    let esc = escalation("build-01", Kind::First, secs_ago(60), secs_ago(1));
    shown.push_str(&format!("{:?}", s.send(&esc, "k")));
    let basic = receiver(&format!(
        "urls = [\"{down}\"]\nusername = \"logward\"\npassword = \"pa55w0rd-basic\""
    ));
    shown.push_str(&format!("{basic:?}"));
    let mut s = Alertmanager::new(Arc::from("am"), &basic);
    shown.push_str(&format!("{:?}", s.send(&esc, "k")));
    for secret in ["s3cr3t-bearer-token", "pa55w0rd-basic"] {
        assert!(!shown.contains(secret), "{secret} shown in {shown}");
    }
    assert!(
        shown.contains("200 OK") && shown.contains("cannot connect"),
        "{shown}"
    );
}

#[test]
fn alertmanager_config_errors_name_their_place() {
    let text = "[receiver.am]\ntype = \"alertmanager\"\nurls = [\"ftp://x\", \"http://u:p@am:9093\"]\nlabels_from = [\"9bad\", \"severity\"]\nresolve_after = \"soon\"\nbearer_token = \"t\"\nusername = \"u\"\npassword = \"p\"\n[receiver.none]\ntype = \"alertmanager\"\n";
    let err = Config::parse(Path::new("logward.toml"), text)
        .unwrap_err()
        .to_string();
    for want in [
        "logward.toml:3:9: not an http(s) url",
        "logward.toml:3:20: an alertmanager url carries credentials",
        "logward.toml:4:16: `9bad` is not a valid label name",
        "logward.toml:4:24: `severity` is always a label",
        "logward.toml:5:17: invalid `resolve_after`",
        "both basic auth and `bearer_token` are set",
        "alertmanager receiver has no `urls`",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("u:p@"), "{err}");
}

#[test]
fn alertmanager_resolve_after_defaults_to_twice_the_longest_window() {
    let text = "[receiver.am]\ntype = \"alertmanager\"\nurls = [\"http://am:9093\"]\n[[route]]\nname = \"a\"\nreceivers = [\"am\"]\nwindow = \"20m\"\n[[route]]\nname = \"b\"\nreceivers = [\"am\"]\nwindow = \"1m\"\n";
    let cfg = Config::parse(Path::new("logward.toml"), text).unwrap();
    let ReceiverKind::Alertmanager(am) = &cfg.receivers["am"].kind else {
        panic!()
    };
    assert_eq!(am.resolve_after, Duration::from_secs(40 * 60));
    assert_eq!(
        receiver("urls = [\"http://am:9093\"]").resolve_after,
        Duration::from_secs(20 * 60)
    );
}

// Through `logward run`: a file source, route `errors` (one group per service), receiver `am`.

use common::delivery::{Delivery, assert_no_secret, logged_keys};

/// Receiver `am` to `url`, with more `keys`.
fn am_table(url: &str, keys: &str) -> String {
    format!("type = \"alertmanager\"\nurls = [\"{url}\"]\n{keys}\n")
}

/// Waits until `am` holds the alert of service `service`; returns it.
fn wait_alert(am: &Am, agent: &common::Agent, service: &str) -> Value {
    common::wait_until(
        &format!("the alert of {service} in Alertmanager"),
        agent,
        || {
            am.alerts()
                .into_iter()
                .find(|a| a["labels"]["service"] == service)
        },
    )
}

/// Alertmanager has no rate limit and no 429: its "try later" is being down (or a 5xx from a
/// proxy in front). It is down when the error comes: the attempts fail on the refused
/// connection and are counted as retries; once it is started on its port, the next attempt
/// delivers the alert, and the outbox empties.
#[test]
fn alertmanager_down_then_started_gets_the_alert_through_run() {
    let port = free_port();
    let d = Delivery::new(
        &[("am", &am_table(&format!("http://127.0.0.1:{port}"), ""))],
        &[],
    );
    let agent = d.start();
    d.error("api");
    d.wait_metric(
        &agent,
        "logward_receiver_retries_total{receiver=\"am\"}",
        1.0,
    );
    assert_eq!(d.outbox().len(), 1, "waiting in the outbox meanwhile");
    let am = Am::start_on(port);
    let alert = wait_alert(&am, &agent, "api");
    d.wait_outbox_empty(&agent);
    let metrics = d.metrics(&agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("POST failed: cannot connect"), "{stderr}");
    assert_eq!(alert["labels"]["route"], "errors");
    assert_eq!(alert["labels"]["severity"], "error");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(am.alerts().len(), 1);
    assert_eq!(
        common::sample(
            &metrics,
            "logward_escalations_total{route=\"errors\",receiver=\"am\",kind=\"first\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

/// Alertmanager down, the escalation waiting in `state_dir/outbox`, `kill -9`; the restarted
/// agent delivers it once Alertmanager is up, under the key of its first attempt. (An alert is
/// identified by its labels, so a repeat would update the same alert, not add one.)
#[test]
fn alertmanager_escalation_in_the_outbox_at_kill_9_is_delivered_after_the_restart() {
    let port = free_port();
    let d = Delivery::new(
        &[("am", &am_table(&format!("http://127.0.0.1:{port}"), ""))],
        &[],
    );
    let agent = d.start();
    d.error("api");
    d.wait_metric(
        &agent,
        "logward_receiver_retries_total{receiver=\"am\"}",
        1.0,
    );
    let queued = d.wait_outbox(&agent, 1);
    d.wait_checkpointed(&agent);
    let tried = logged_keys(&agent.stderr(), "delivery failed; will retry");
    agent.kill9();
    assert_eq!(d.outbox(), queued, "kill -9 keeps the outbox");
    assert_eq!(tried[0], queued[0].key);

    let am = Am::start_on(port);
    let agent = d.start();
    wait_alert(&am, &agent, "api");
    d.wait_outbox_empty(&agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(am.alerts().len(), 1);
    assert_eq!(
        logged_keys(&stderr, "escalation delivered"),
        [queued[0].key.clone()]
    );
}

/// A final answer is not retried. Alertmanager answers 400 only to an alert logward never
/// builds from a log (a start after its end, a bad label name: see
/// `alertmanager_invalid_alert_is_rejected_not_retried` for the 400 itself); what a
/// configuration can get wrong is the url: a path it does not serve gets its own
/// `404 page not found`, rejected once, counted, and the outbox is empty afterwards.
#[test]
fn alertmanager_a_path_it_does_not_serve_is_rejected_not_retried_through_run() {
    let am = Am::start();
    let d = Delivery::new(&[("am", &am_table(&format!("{}/nope/", am.url), ""))], &[]);
    let agent = d.start();
    d.error("api");
    d.wait_metric(
        &agent,
        "logward_receiver_errors_total{receiver=\"am\",reason=\"rejected\"}",
        1.0,
    );
    d.wait_outbox_empty(&agent);
    let metrics = d.metrics(&agent);
    let (status, stderr) = agent.stop();
    assert!(status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("rejected the escalation"))
        .unwrap_or_else(|| panic!("no rejection logged:\n{stderr}"));
    assert!(
        line.contains("alertmanager 1 of 1: 404 Not Found: 404 page not found"),
        "{line}"
    );
    assert!(!line.contains("/nope"), "the url is not shown: {line}");
    assert_eq!(
        common::sample(&metrics, "logward_receiver_retries_total{receiver=\"am\"}").unwrap_or(0.0),
        0.0,
        "nothing was retried"
    );
    assert!(am.alerts().is_empty());
}

/// A bearer token (`${VAR}`) and a basic-auth password (`password_file`) show in no output:
/// `check`, `notify test` (taken, and failed on a closed port), the agent's stdout and stderr
/// at debug level, `/metrics`, `state_dir` (the outbox holds the failing receiver's alert).
#[test]
fn alertmanager_credentials_show_nowhere_through_run() {
    const TOKEN: &str = "am-BEARER-t0ken-77";
    const PASSWORD: &str = "am-basic-PASSW0RD-31";
    let am = Am::start();
    let files = tempfile::tempdir().unwrap();
    let password_file = files.path().join("am-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let down = format!("http://127.0.0.1:{}", free_port());
    let d = Delivery::new(
        &[
            ("am", &am_table(&am.url, "bearer_token = \"${AM_TOKEN}\"")),
            (
                "down",
                &am_table(
                    &down,
                    &format!(
                        "username = \"logward\"\npassword_file = \"{}\"",
                        password_file.display()
                    ),
                ),
            ),
        ],
        &[("AM_TOKEN", TOKEN)],
    );
    let check = d.run(&["check"]);
    assert!(check.status.success(), "{}", check.all_output());
    let tested = d.run(&["notify", "test", "am"]);
    assert_eq!(tested.status.code(), Some(0), "{}", tested.all_output());
    let failed = d.run(&["notify", "test", "down"]);
    assert_eq!(failed.status.code(), Some(1), "{}", failed.all_output());

    let agent = d.start_with(&[("LOGWARD_LOG", "debug")]);
    d.error("api");
    let alert = wait_alert(&am, &agent, "api");
    d.wait_metric(
        &agent,
        "logward_receiver_retries_total{receiver=\"down\"}",
        1.0,
    );
    let metrics = d.metrics(&agent);
    let (status, stdout, stderr) = agent.stop_capturing();
    assert!(status.success(), "{stderr}");
    assert_eq!(alert["labels"]["route"], "errors");
    assert!(d.outbox().iter().any(|q| q.receiver == "down"));
    let mut places = vec![
        ("`logward check`".to_string(), check.all_output()),
        ("`logward notify test am`".into(), tested.all_output()),
        ("`logward notify test down`".into(), failed.all_output()),
        ("the agent's stdout".into(), stdout),
        ("the agent's stderr (debug)".into(), stderr),
        ("/metrics".into(), metrics),
    ];
    for (path, text) in d.state_files() {
        places.push((path.display().to_string(), text));
    }
    assert_no_secret(&[TOKEN, PASSWORD], &places);
}
