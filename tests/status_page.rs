//! The status page and `/api/v1` of a running agent: what they show (the busiest groups,
//! escalations and their delivery, sources, silences), who may read and change what, that
//! a hostile log line stays text, and the page in a real browser (Debian's `chromium`).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Agent, Answer, Config, Env, free_addr, http_request, run_to_exit, wait_until};
use serde_json::Value;

const TOKEN: &str = "s3cret-status-token";
const FIXTURE: &str = "tests/fixtures/status/build.log";
const HOSTILE: &str = "tests/fixtures/hostile/lines.txt";

/// An agent tailing `logs/*.log` with the status page on `addr`: every warning and above
/// goes to `audit`, a `file` receiver; `http_extra` goes into `[http]`, `more` (receivers and
/// routes that come first) after it.
struct Status {
    env: Env,
    agent: Agent,
    addr: SocketAddr,
}

fn config(env: &Env, listen: SocketAddr, http_extra: &str, more: &str) -> PathBuf {
    let top = format!(
        r#"[http]
listen = "{listen}"
{http_extra}
{more}

[receiver.audit]
type = "file"
path = "{audit}"

[[route]]
name = "problems"
match = {{ level = ">=warn" }}
receivers = ["audit"]
"#,
        audit = env.path("escalations.ndjson").display()
    );
    env.config_with(Config {
        top_extra: &top,
        ..Config::default()
    })
}

fn start(log: &str, http_extra: &str, more: &str) -> Status {
    let env = Env::new();
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| panic!("{log}: {e}"));
    env.write("logs/build.log", &text);
    let addr = free_addr();
    let agent = env.start(&config(&env, addr, http_extra, more));
    Status { env, agent, addr }
}

fn token_line() -> String {
    format!("token = \"{TOKEN}\"")
}

impl Status {
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        http_request(self.addr, method, path, headers, body).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: {e}\n--- agent stderr ---\n{}",
                self.agent.stderr()
            )
        })
    }

    fn get(&self, path: &str) -> Answer {
        wait_until("the HTTP endpoint", &self.agent, || {
            http_request(self.addr, "GET", path, &[], "").ok()
        })
    }

    /// Polls `GET path` until `ok` holds for its JSON; returns that JSON.
    fn json_until(&self, what: &str, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
        wait_until(what, &self.agent, || {
            let a = http_request(self.addr, "GET", path, &[], "").ok()?;
            let v: Value = serde_json::from_str(&a.body).ok()?;
            ok(&v).then_some(v)
        })
    }

    /// Waits until the busiest group is the fixture's twelve `db timeout`s.
    fn fingerprints(&self) -> Value {
        self.json_until(
            "the db timeouts to lead /api/v1/fingerprints",
            "/api/v1/fingerprints",
            |v| v["fingerprints"][0]["count"] == 12,
        )
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn fingerprints_api_lists_the_busiest_group_first_with_its_last_hour() {
    let s = start(FIXTURE, "", "");
    let v = s.fingerprints();
    let top = &v["fingerprints"][0];
    assert_eq!(top["template"], "db timeout after <duration> on orders-db");
    assert_eq!(top["level"], "error");
    assert_eq!(top["service"], "api");
    assert_eq!(top["ci_run_id"], "4711");
    assert_eq!(top["route"], "problems");
    assert_eq!(top["escalated"]["kind"], "first");
    assert_eq!(top["suppressed"], 11, "one notified, eleven counted");
    let minutes = top["per_minute"].as_array().expect("per_minute");
    assert_eq!(minutes.len(), 60);
    let last_hour: u64 = minutes.iter().filter_map(Value::as_u64).sum();
    assert_eq!(last_hour, 12, "{minutes:?}");
    assert!(top["first_seen"].as_str().is_some() && top["last_seen"].as_str().is_some());
    let counts: Vec<u64> = v["fingerprints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["count"].as_u64().unwrap())
        .collect();
    assert_eq!(
        counts,
        [12, 6, 3, 2],
        "busiest first; info lines are not routed"
    );
    assert_eq!(v["listed_max"], 100);

    let filtered = s.get("/api/v1/fingerprints?level=warn&service=AP").json();
    let rows = filtered["fingerprints"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{filtered}");
    assert_eq!(rows[0]["template"], "cache miss for key user:<num>");
    let by_run = s.get("/api/v1/fingerprints?ci_run_id=4712&limit=1").json();
    assert_eq!(by_run["fingerprints"].as_array().unwrap().len(), 1);
    assert_eq!(by_run["fingerprints"][0]["service"], "build");
    let bad = s.get("/api/v1/fingerprints?level=loud");
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("unknown level")
    );
}

/// Routes the `deploy` service to `hook`, a chat receiver with an `explore_url` on a port
/// nobody listens on: every attempt fails and is retried.
fn deploys_to_a_closed_port() -> String {
    format!(
        r#"
[receiver.hook]
type = "slack"
url = "http://{}/services/T/B/x"
explore_url = "https://grafana.example/explore?left={{loki_query}}"

[[route]]
name = "deploys"
match = {{ service = "deploy" }}
receivers = ["hook"]
"#,
        free_addr()
    )
}

#[test]
fn escalations_api_shows_sent_and_retrying_deliveries_with_the_last_error() {
    let s = start(FIXTURE, "", &deploys_to_a_closed_port());
    let v = s.json_until(
        "a sent and a retrying escalation",
        "/api/v1/escalations",
        |v| {
            let rows = v["escalations"].as_array().cloned().unwrap_or_default();
            rows.iter().any(|r| r["state"] == "sent")
                && rows.iter().any(|r| r["state"] == "retrying")
        },
    );
    let rows = v["escalations"].as_array().unwrap();
    let sent = rows
        .iter()
        .find(|r| r["state"] == "sent" && r["service"] == "api" && r["level"] == "error")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(sent["route"], "problems");
    assert_eq!(sent["receiver"], "audit");
    assert_eq!(sent["kind"], "first");
    assert_eq!(sent["attempts"], 1);
    assert!(
        sent["explore_url"].is_null(),
        "a file receiver has no explore_url"
    );
    let retrying = rows.iter().find(|r| r["state"] == "retrying").unwrap();
    assert_eq!(retrying["receiver"], "hook");
    assert_eq!(retrying["route"], "deploys");
    let error = retrying["last_error"].as_str().unwrap();
    assert!(!error.is_empty(), "{retrying:#}");
    assert!(retrying["next_attempt_at"].as_str().is_some());
    assert!(retrying["attempts"].as_u64().unwrap() >= 1);
    let link = retrying["explore_url"].as_str().unwrap_or_default();
    assert!(
        link.starts_with("https://grafana.example/explore?left=%7B"),
        "{link}"
    );
}

#[test]
fn sources_api_shows_each_file_with_its_position_and_lag() {
    let s = start(FIXTURE, "", "");
    let size = std::fs::metadata(s.env.logs().join("build.log"))
        .unwrap()
        .len();
    let v = s.json_until("the file delivered", "/api/v1/sources", |v| {
        v["sources"][0]["files"][0]["position"] == size
    });
    let src = &v["sources"][0];
    assert_eq!(src["name"], "test");
    assert_eq!(src["type"], "file");
    assert_eq!(src["tracked"], 1);
    assert_eq!(src["lag_bytes"], 0);
    assert_eq!(src["rotations"], 0);
    assert_eq!(src["lines_read"], 25);
    let file = &src["files"][0];
    assert!(file["path"].as_str().unwrap().ends_with("logs/build.log"));
    assert_eq!(file["size"], size);
    assert_eq!(
        (file["lag_bytes"].as_u64(), file["lag_seconds"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(file["rotated"], false);
    assert!(file["last_error"].is_null());

    // Rotation: the file is renamed away and a new one takes its name.
    std::fs::rename(s.env.logs().join("build.log"), s.env.path("build.log.1")).unwrap();
    s.env.append(
        "build.log",
        "level=error service=api msg=\"after the rotation\"\n",
    );
    s.json_until("the rotation counted", "/api/v1/sources", |v| {
        v["sources"][0]["rotations"] == 1
    });
}

#[test]
fn silences_api_adds_lists_and_expires_with_the_bearer_token() {
    let s = start(FIXTURE, &token_line(), "");
    s.get("/health");
    let auth = bearer(TOKEN);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let added = s.request(
        "POST",
        "/api/v1/silences",
        &headers,
        r#"{"matchers": ["service=api", {"key": "level", "op": "=~", "value": "error|critical"}], "for": "2h", "comment": "deploy of api"}"#,
    );
    assert_eq!(added.status, 201, "{}", added.body);
    let silence = added.json();
    let id = silence["id"].as_str().unwrap().to_string();
    assert_eq!(silence["status"], "active");
    assert_eq!(silence["comment"], "deploy of api");
    assert_eq!(silence["created_by"], "api");

    let listed = s.get("/api/v1/silences").json();
    assert_eq!(listed["silences"][0]["id"], id.as_str());
    // The CLI reads the same store.
    let cli = run_to_exit(
        &[
            "silence",
            "list",
            "--json",
            "-c",
            s.env.path("logward.toml").to_str().unwrap(),
        ],
        &[],
        b"",
    );
    assert!(cli.stdout.contains(&id), "{}", cli.all_output());

    // The agent applies it: the api errors' group shows the silence.
    s.json_until(
        "the silence on the db timeouts",
        "/api/v1/fingerprints",
        |v| v["fingerprints"][0]["silenced_by"] == id.as_str(),
    );

    let bad = s.request(
        "POST",
        "/api/v1/silences",
        &headers,
        r#"{"matchers": ["service"], "for": "2h"}"#,
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("no operator"),
        "{}",
        bad.body
    );
    let neither = s.request(
        "POST",
        "/api/v1/silences",
        &headers,
        r#"{"matchers": ["service=api"]}"#,
    );
    assert_eq!(neither.status, 400, "{}", neither.body);

    let expired = s.request("DELETE", &format!("/api/v1/silences/{id}"), &headers, "");
    assert_eq!(expired.status, 200, "{}", expired.body);
    assert_eq!(expired.json()["status"], "expired");
    let again = s.request("DELETE", &format!("/api/v1/silences/{id}"), &headers, "");
    assert_eq!(again.status, 409, "{}", again.body);
    let unknown = s.request("DELETE", "/api/v1/silences/ffffffff", &headers, "");
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}

#[test]
fn changes_without_the_right_token_are_refused() {
    let body = r#"{"matchers": ["service=api"], "for": "1h"}"#;
    let s = start(FIXTURE, &token_line(), "");
    s.get("/health");
    let none = s.request("POST", "/api/v1/silences", &[], body);
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(
        none.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    let wrong_auth = bearer("not-the-token");
    let wrong = s.request(
        "POST",
        "/api/v1/silences",
        &[("authorization", &wrong_auth)],
        body,
    );
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.json()["error"]
            .as_str()
            .unwrap()
            .contains("wrong token")
    );
    let delete = s.request(
        "DELETE",
        "/api/v1/silences/abc",
        &[("authorization", &wrong_auth)],
        "",
    );
    assert_eq!(delete.status, 401);
    // A form post with no sign-in is refused too, and nothing reached the store.
    let form = s.request(
        "POST",
        "/silences",
        &[("content-type", "application/x-www-form-urlencoded")],
        "matchers=service%3Dapi&for=1h",
    );
    assert_eq!(form.status, 401);
    assert_eq!(
        s.get("/api/v1/silences").json()["silences"],
        Value::Array(vec![])
    );
    // Reading on loopback needs nothing, but only under a local host name (no DNS rebinding).
    assert_eq!(s.get("/api/v1/sources").status, 200);
    let rebound = s.request("GET", "/", &[("host", "rebind.evil.example:80")], "");
    assert_eq!(rebound.status, 421);
    assert!(!s.agent.stderr().contains(TOKEN), "the token was logged");

    // With no token configured, changes over HTTP are off altogether.
    let open = start(FIXTURE, "", "");
    open.get("/health");
    let auth = bearer(TOKEN);
    let off = open.request(
        "POST",
        "/api/v1/silences",
        &[("authorization", &auth)],
        body,
    );
    assert_eq!(off.status, 403);
    assert!(
        off.json()["error"]
            .as_str()
            .unwrap()
            .contains("no [http] token")
    );
}

#[test]
fn check_refuses_a_non_loopback_listen_without_a_token() {
    let env = Env::new();
    let config = config(&env, "0.0.0.0:9898".parse().unwrap(), "", "");
    let out = run_to_exit(&["check", "-c", config.to_str().unwrap()], &[], b"");
    assert_eq!(out.status.code(), Some(1), "{}", out.all_output());
    let text = std::fs::read_to_string(&config).unwrap();
    let line = 1 + text
        .lines()
        .position(|l| l.starts_with("listen ="))
        .unwrap();
    let at = format!("logward.toml:{line}:");
    assert!(
        out.all_output().contains(&at),
        "{at} in {}",
        out.all_output()
    );
    assert!(
        out.all_output().contains("not a loopback address"),
        "{}",
        out.all_output()
    );
    let config = self::config(
        &env,
        "0.0.0.0:9898".parse().unwrap(),
        "token = \"${STATUS_TEST_TOKEN}\"",
        "",
    );
    let out = run_to_exit(
        &["check", "-c", config.to_str().unwrap()],
        &[("STATUS_TEST_TOKEN", TOKEN)],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.all_output());
    assert!(!out.all_output().contains(TOKEN));
}

#[test]
fn a_non_loopback_listener_needs_the_token_even_to_read() {
    let env = Env::new();
    env.write("logs/build.log", &std::fs::read_to_string(FIXTURE).unwrap());
    let port = free_addr().port();
    let listen: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
    env.write("token", &format!("{TOKEN}\n"));
    let token_file = format!("token_file = \"{}\"", env.path("token").display());
    let agent = env.start(&config(&env, listen, &token_file, ""));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let health = wait_until("/health", &agent, || {
        http_request(addr, "GET", "/health", &[], "").ok()
    });
    assert_eq!(health.status, 200, "probes stay open");
    for path in [
        "/",
        "/api/v1/fingerprints",
        "/api/v1/sources",
        "/api/v1/silences",
    ] {
        let a = http_request(addr, "GET", path, &[], "").unwrap();
        assert_eq!(a.status, 401, "{path}: {}", a.body);
    }
    let auth = bearer(TOKEN);
    let ok = http_request(
        addr,
        "GET",
        "/api/v1/sources",
        &[("authorization", &auth)],
        "",
    )
    .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    let page = http_request(addr, "GET", "/", &[], "").unwrap();
    assert!(
        page.body.contains("name=\"token\""),
        "the refusal offers to sign in"
    );
}

#[test]
fn the_page_signs_in_and_adds_and_expires_a_silence_with_its_forms() {
    let s = start(FIXTURE, &token_line(), "");
    let anonymous = s.get("/");
    assert!(
        !anonymous.body.contains("action=\"/silences\""),
        "no form before signing in"
    );
    assert!(anonymous.body.contains("action=\"/login\""));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let wrong = s.request("POST", "/login", &form, "token=nope");
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let login = s.request("POST", "/login", &form, &format!("token={TOKEN}"));
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = login
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(TOKEN), "the cookie is not the token");
    let session = cookie.split(';').next().unwrap().to_string();
    let origin = format!("http://{}", s.addr);
    let signed_in = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("cookie", session.as_str()),
        ("origin", origin.as_str()),
    ];
    let page = s.request("GET", "/", &signed_in[1..2], "");
    assert!(
        page.body.contains("action=\"/silences\""),
        "the add form once signed in"
    );

    let added = s.request(
        "POST",
        "/silences",
        &signed_in,
        "matchers=service%3Dbuild%0D%0Alevel%3Derror&for=30m&comment=flaky+registry",
    );
    assert_eq!(added.status, 303, "{}", added.body);
    let list = s.get("/api/v1/silences").json();
    let silence = &list["silences"][0];
    assert_eq!(silence["comment"], "flaky registry");
    assert_eq!(silence["matchers"].as_array().unwrap().len(), 2);
    let id = silence["id"].as_str().unwrap().to_string();

    // The same cookie from another site's form is refused.
    let cross = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("cookie", session.as_str()),
        ("origin", "http://evil.example"),
    ];
    let forged = s.request("POST", &format!("/silences/{id}/expire"), &cross, "");
    assert_eq!(forged.status, 403);
    let expired = s.request("POST", &format!("/silences/{id}/expire"), &signed_in, "");
    assert_eq!(expired.status, 303, "{}", expired.body);
    assert_eq!(
        s.get("/api/v1/silences").json()["silences"][0]["status"],
        "expired"
    );
    let bad = s.request(
        "POST",
        "/silences",
        &signed_in,
        "matchers=level%3Dloud&for=1h",
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("unknown level"), "{}", bad.body);
}

#[test]
fn hostile_line_is_escaped_on_the_page() {
    let s = start(HOSTILE, &token_line(), "");
    s.json_until("the hostile lines listed", "/api/v1/fingerprints", |v| {
        v["fingerprints"].as_array().is_some_and(|f| f.len() >= 10)
    });
    s.json_until("their escalations", "/api/v1/escalations", |v| {
        v["escalations"].as_array().is_some_and(|e| e.len() >= 10)
    });
    let page = s.get("/");
    assert_eq!(page.status, 200);
    let html = &page.body;
    for raw in [
        "<script>alert(1)</script>",
        "<img src=x",
        "<b>bold</b>",
        "<a href=\"https://evil.example\">",
        "<font color",
        "<at user_id",
        "\u{202e}",
        "\u{1b}",
        "\u{0}",
    ] {
        assert!(!html.contains(raw), "{raw:?} reached the page unescaped");
    }
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the line is shown as text"
    );
    assert!(
        html.contains("\\u{202e}"),
        "a bidi override is shown as its code"
    );
    // The only script is the page's own, allowed by its hash; nothing else may run or load.
    assert_eq!(html.matches("<script").count(), 1);
    let csp = page
        .header("content-security-policy")
        .expect("a CSP header");
    for directive in [
        "default-src 'none'",
        "script-src 'sha256-",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
}

/// Debian's `chromium`, or a failure that says how to install it.
fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromium"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("chromium is missing: install it with `apt-get install -y chromium` (scripts/test installs it)")
    })
}

/// Runs headless chromium on `url` with `args` and a fresh profile; its stdout.
fn headless(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let status = common::wait_timeout(&mut child, Duration::from_secs(60));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("chromium did not finish within 60s on {url}");
    }
    reader.join().expect("chromium stdout")
}

/// Where the screenshot goes: under the build's target directory.
fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png")
}

#[test]
fn the_page_in_a_browser_shows_the_top_fingerprint_an_escalation_and_a_source() {
    let browser = chromium();
    let s = start(FIXTURE, &token_line(), &deploys_to_a_closed_port());
    s.fingerprints();
    s.json_until(
        "a sent and a retrying escalation",
        "/api/v1/escalations",
        |v| {
            let rows = v["escalations"].as_array().cloned().unwrap_or_default();
            rows.iter().any(|r| r["state"] == "sent")
                && rows.iter().any(|r| r["state"] == "retrying")
        },
    );
    let url = format!("http://{}/", s.addr);
    let dom = headless(&url, &["--dump-dom", "--virtual-time-budget=3000"]);
    assert!(
        dom.contains("data-js=\"ready\""),
        "the page's script did not run (CSP?):\n{dom}"
    );
    let first_row = dom
        .split("<tbody id=\"fp-body\"")
        .nth(1)
        .and_then(|b| b.split("</tr>").next())
        .unwrap_or_else(|| panic!("no fingerprint table in\n{dom}"));
    assert!(
        first_row.contains("db timeout after &lt;duration&gt; on orders-db"),
        "{first_row}"
    );
    assert!(first_row.contains("data-count=\"12\""), "{first_row}");
    assert!(
        first_row.contains("class=\"spark\""),
        "a sparkline: {first_row}"
    );
    assert!(
        dom.contains("aria-sort=\"descending\""),
        "sorted by the script"
    );
    let escalations = dom.split("id=\"esc-body\"").nth(1).unwrap_or_default();
    assert!(
        escalations.contains("audit") && escalations.contains("st-sent"),
        "{escalations}"
    );
    assert!(
        escalations.contains("st-retrying") && escalations.contains(">Grafana</a>"),
        "{escalations}"
    );
    let sources = dom.split("id=\"sources\"").nth(1).unwrap_or_default();
    assert!(
        sources.contains("logs/build.log") && sources.contains("following"),
        "{sources}"
    );

    let shot = screenshot_path();
    let _ = std::fs::remove_file(&shot);
    headless(
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1100",
            "--virtual-time-budget=3000",
        ],
    );
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e} ({browser:?})", shot.display()));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG: {}", shot.display());
    assert!(
        png.len() > 10_000,
        "an empty-looking screenshot: {} bytes",
        png.len()
    );
}
