//! A Loki-compatible push endpoint on 127.0.0.1 for the tests (shared/WIRE.md §8).
//!
//! `POST /loki/api/v1/push` takes what Loki takes: the `PushRequest` protobuf compressed with
//! snappy's block format (decoded here with its own copy of the `logproto` schema, not the
//! agent's), or JSON with nanosecond timestamps as strings. It validates what Loki's
//! distributor does (label names and selector syntax, at least one label, at most 15, no
//! empty push, line size, timestamps too old or too far ahead, flat string metadata),
//! keeps the valid entries of a push that has invalid ones and answers 400 with the reasons,
//! drops exact duplicates (same stream, timestamp and line) as Loki does, and answers 204.
//! A test scripts other answers: a status (with Retry-After) for the next requests or all
//! of them, a hang, a Loki 2.x that refuses structured metadata, a tenant requirement; and
//! it can be stopped and started again on the same port (connections refused meanwhile). It
//! speaks HTTPS with a certificate of `tls::TestCa` when started with [`LokiServer::start_tls`].

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use prost::Message;
use serde_json::Value;

/// The schema of Loki's `pkg/push/push.proto`, as Loki reads it (strings are UTF-8 checked).
mod logproto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
        #[prost(string, tag = "2")]
        pub format: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
        #[prost(message, repeated, tag = "4")]
        pub parsed: Vec<LabelPairAdapter>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// Loki's defaults.
pub const MAX_LINE_SIZE: usize = 256 * 1024;
pub const MAX_LABELS: usize = 15;
pub const REJECT_OLD_SAMPLES_MAX_AGE: Duration = Duration::from_secs(168 * 3600);
pub const CREATION_GRACE_PERIOD: Duration = Duration::from_secs(600);

/// How the server answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This status and body, with a Retry-After header when given.
    Status {
        status: u16,
        body: String,
        retry_after: Option<String>,
    },
    /// Never answer (the client times out).
    Hang,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer::Status {
            status,
            body: format!("scripted {status}"),
            retry_after: None,
        }
    }
}

/// One entry as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub labels: BTreeMap<String, String>,
    pub ts: i64,
    pub line: String,
    pub metadata: BTreeMap<String, String>,
    pub tenant: Option<String>,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub at: Instant,
    pub headers: Vec<(String, String)>,
    pub body_bytes: usize,
    pub status: u16,
    /// What the server refused, when it did.
    pub problem: Option<String>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    seen: HashSet<(String, i64, String)>,
    requests: Vec<Request>,
    script: VecDeque<Answer>,
    /// Used for every request while set (after the script).
    always: Option<Answer>,
    refuse_metadata: bool,
    require_tenant: bool,
}

pub struct LokiServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    runtime: Option<tokio::runtime::Runtime>,
    /// The certificate chain and key it serves HTTPS with, if it does.
    tls: Option<(PathBuf, PathBuf)>,
}

impl LokiServer {
    pub fn start() -> LokiServer {
        LokiServer::serve(None)
    }

    /// Serves HTTPS as `localhost` with the PEM certificate chain `cert` and its key `key`.
    pub fn start_tls(cert: &Path, key: &Path) -> LokiServer {
        LokiServer::serve(Some((cert.to_path_buf(), key.to_path_buf())))
    }

    fn serve(tls: Option<(PathBuf, PathBuf)>) -> LokiServer {
        let mut s = LokiServer {
            addr: "127.0.0.1:0".parse().unwrap(),
            state: Arc::default(),
            runtime: None,
            tls,
        };
        s.listen();
        s
    }

    fn listen(&mut self) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(self.addr))
            .unwrap_or_else(|e| panic!("bind {}: {e}", self.addr));
        self.addr = listener.local_addr().unwrap();
        let state = self.state.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move { handle(state, uri, headers, body).await }
        });
        match &self.tls {
            None => runtime.spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
            Some((cert, key)) => {
                let listener = crate::common::tls::TlsListener::new(listener, cert, key);
                runtime.spawn(async move {
                    let _ = axum::serve(listener, app).await;
                })
            }
        };
        self.runtime = Some(runtime);
    }

    /// Loki goes away: connections are refused until `restart`.
    pub fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }

    /// Loki comes back on the same port, with what it stored.
    pub fn restart(&mut self) {
        self.stop();
        self.listen();
    }

    /// The `url` of `[loki]`.
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("http://{}", self.addr),
            Some(_) => format!("https://localhost:{}", self.addr.port()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Answers the next request with `a` (after those already scripted).
    pub fn then(&self, a: Answer) {
        self.state().script.push_back(a);
    }

    /// Answers every request with `a` until `always(None)`.
    pub fn always(&self, a: Option<Answer>) {
        self.state().always = a;
    }

    /// Behaves as a Loki 2.x: a push with structured metadata gets a 400.
    pub fn refuse_metadata(&self) {
        self.state().refuse_metadata = true;
    }

    /// Behaves as a multi-tenant Loki: a push without X-Scope-OrgID gets a 401.
    pub fn require_tenant(&self) {
        self.state().require_tenant = true;
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.state().entries.clone()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state().requests.clone()
    }

    /// The lines stored, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.state()
            .entries
            .iter()
            .map(|e| e.line.clone())
            .collect()
    }

    /// Waits until at least `n` entries are stored; panics after `patience` with what came.
    pub fn wait_entries(
        &self,
        n: usize,
        patience: Duration,
        stderr: impl Fn() -> String,
    ) -> Vec<Entry> {
        let deadline = Instant::now() + patience;
        loop {
            let got = self.entries();
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited {patience:?} for {n} entries in Loki, have {}; requests: {:#?}\n--- agent stderr ---\n{}",
                    got.len(),
                    self.requests().iter().rev().take(5).collect::<Vec<_>>(),
                    stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LokiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

async fn handle(state: Arc<Mutex<State>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let scripted = {
        let mut s = state.lock().unwrap();
        s.script.pop_front().or_else(|| s.always.clone())
    };
    if let Some(Answer::Hang) = scripted {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let header_list: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let tenant = headers
        .get("x-scope-orgid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut s = state.lock().unwrap();
    let (status, problem, retry_after) = match scripted {
        Some(Answer::Status {
            status,
            body,
            retry_after,
        }) => (status, Some(body), retry_after),
        _ if uri.path() != "/loki/api/v1/push" => (404, Some("404 page not found".into()), None),
        _ if s.require_tenant && tenant.is_none() => (401, Some("no org id".into()), None),
        _ => match decode(&headers, &body) {
            Err(problem) => (400, Some(problem), None),
            Ok(streams) => {
                let refuse_metadata = s.refuse_metadata;
                match store(&mut s, streams, tenant, refuse_metadata) {
                    Ok(()) => (204, None, None),
                    Err(problem) => (400, Some(problem), None),
                }
            }
        },
    };
    s.requests.push(Request {
        at: Instant::now(),
        headers: header_list,
        body_bytes: body.len(),
        status,
        problem: problem.clone(),
    });
    drop(s);
    let mut r = (
        StatusCode::from_u16(status).unwrap(),
        problem.unwrap_or_default(),
    )
        .into_response();
    if let Some(ra) = retry_after {
        r.headers_mut().insert("retry-after", ra.parse().unwrap());
    }
    r
}

/// One stream as pushed: its selector text and entries (ts, line, metadata).
struct Pushed {
    selector: String,
    entries: Vec<(i64, String, BTreeMap<String, String>)>,
}

fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Pushed>, String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/x-protobuf") {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .map_err(|e| format!("snappy: {e}"))?;
        let req =
            logproto::PushRequest::decode(raw.as_slice()).map_err(|e| format!("proto: {e}"))?;
        Ok(req
            .streams
            .into_iter()
            .map(|s| Pushed {
                selector: s.labels,
                entries: s
                    .entries
                    .into_iter()
                    .map(|e| {
                        let ts = e
                            .timestamp
                            .map_or(0, |t| t.seconds * 1_000_000_000 + i64::from(t.nanos));
                        let meta = e
                            .structured_metadata
                            .into_iter()
                            .map(|p| (p.name, p.value))
                            .collect();
                        (ts, e.line, meta)
                    })
                    .collect(),
            })
            .collect())
    } else if content_type.starts_with("application/json") {
        decode_json(body)
    } else {
        Err(format!("unsupported Content-Type {content_type:?}"))
    }
}

fn decode_json(body: &[u8]) -> Result<Vec<Pushed>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("JSON: {e}"))?;
    let streams = v["streams"].as_array().ok_or("no streams array")?;
    let mut out = Vec::new();
    for s in streams {
        let labels = s["stream"].as_object().ok_or("stream is not an object")?;
        let mut selector = String::from("{");
        for (i, (k, v)) in labels.iter().enumerate() {
            let v = v.as_str().ok_or("a label value is not a string")?;
            if i > 0 {
                selector.push_str(", ");
            }
            selector.push_str(&format!("{k}={}", serde_json::to_string(v).unwrap()));
        }
        selector.push('}');
        let mut entries = Vec::new();
        for value in s["values"].as_array().ok_or("values is not an array")? {
            let arr = value.as_array().ok_or("a value is not an array")?;
            let ts = arr
                .first()
                .and_then(Value::as_str)
                .ok_or("timestamp is not a string of nanoseconds")?;
            let ts: i64 = ts
                .parse()
                .map_err(|_| format!("timestamp {ts:?} is not nanoseconds"))?;
            let line = arr
                .get(1)
                .and_then(Value::as_str)
                .ok_or("line is not a string")?;
            let mut meta = BTreeMap::new();
            if let Some(m) = arr.get(2) {
                for (k, v) in m
                    .as_object()
                    .ok_or("structured metadata is not an object")?
                {
                    let v = v.as_str().ok_or("structured metadata values are strings")?;
                    meta.insert(k.clone(), v.to_string());
                }
            }
            if arr.len() > 3 {
                return Err("a value has more than 3 elements".into());
            }
            entries.push((ts, line.to_string(), meta));
        }
        out.push(Pushed { selector, entries });
    }
    Ok(out)
}

/// Parses a selector as Loki does: `{name="value", ...}`, values Go-quoted.
pub fn parse_selector(text: &str) -> Result<BTreeMap<String, String>, String> {
    let bad = |why: &str| format!("parse error in labels {text:?}: {why}");
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| bad("not in braces"))?;
    let mut chars = inner.chars().peekable();
    let mut out = BTreeMap::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || name.starts_with("__") {
            return Err(format!("invalid label name {name:?}"));
        }
        if chars.next() != Some('=') || chars.next() != Some('"') {
            return Err(bad("expected =\""));
        }
        let mut value = String::new();
        loop {
            match chars.next().ok_or_else(|| bad("unterminated value"))? {
                '"' => break,
                '\\' => match chars.next().ok_or_else(|| bad("bad escape"))? {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    '"' => value.push('"'),
                    '\\' => value.push('\\'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| bad("bad \\u escape"))?;
                        value.push(c);
                    }
                    other => return Err(bad(&format!("unknown escape \\{other}"))),
                },
                c if c.is_control() => return Err(bad("raw control character in a value")),
                c => value.push(c),
            }
        }
        if out.insert(name.clone(), value).is_some() {
            return Err(format!("duplicate label name {name:?}"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(c) => return Err(bad(&format!("unexpected {c:?}"))),
        }
    }
    Ok(out)
}

/// Validates and stores each stream's entries; the valid ones are kept even when others are
/// refused, as Loki does.
fn store(
    s: &mut State,
    streams: Vec<Pushed>,
    tenant: Option<String>,
    refuse_metadata: bool,
) -> Result<(), String> {
    if streams.is_empty() {
        return Err("empty push: no streams".into());
    }
    let now = now_nanos();
    let oldest = now - REJECT_OLD_SAMPLES_MAX_AGE.as_nanos() as i64;
    let newest = now + CREATION_GRACE_PERIOD.as_nanos() as i64;
    let mut problems = Vec::new();
    for p in streams {
        let labels = match parse_selector(&p.selector) {
            Ok(l) if l.is_empty() => {
                problems.push("error at least one label pair is required per stream".to_string());
                continue;
            }
            Ok(l) if l.len() > MAX_LABELS => {
                problems.push(format!(
                    "stream '{}' has {} label names; limit {MAX_LABELS}",
                    p.selector,
                    l.len()
                ));
                continue;
            }
            Ok(l) => l,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        if p.entries.is_empty() {
            problems.push(format!("stream '{}' has no entries", p.selector));
            continue;
        }
        if refuse_metadata && p.entries.iter().any(|e| !e.2.is_empty()) {
            problems.push(format!("stream '{}' includes structured metadata, but this feature is disallowed. Please see `limits_config.structured_metadata` or contact your Loki administrator to enable it.", p.selector));
            continue;
        }
        let key: String = labels.iter().map(|(k, v)| format!("{k}={v:?},")).collect();
        for (ts, line, metadata) in p.entries {
            if line.len() > MAX_LINE_SIZE {
                problems.push(format!("Max entry size '{MAX_LINE_SIZE}' bytes exceeded for stream '{}' while adding an entry with length '{}' bytes", p.selector, line.len()));
            } else if ts < oldest {
                problems.push(format!(
                    "entry for stream '{}' has timestamp too old: {ts}",
                    p.selector
                ));
            } else if ts > newest {
                problems.push(format!(
                    "entry for stream '{}' has timestamp too new: {ts}",
                    p.selector
                ));
            } else if s.seen.insert((key.clone(), ts, line.clone())) {
                s.entries.push(Entry {
                    labels: labels.clone(),
                    ts,
                    line,
                    metadata,
                    tenant: tenant.clone(),
                });
            }
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("\n")),
    }
}
