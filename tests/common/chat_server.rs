//! Test peers for the web receivers: HTTP servers on 127.0.0.1 that behave like Slack,
//! Feishu, DingTalk, WeCom and a signed generic webhook (shared/WIRE.md). Each checks the
//! path or key, the content type, the exact body schema and the signature, and answers a
//! problem with the provider's own error shape; it records every request. A test scripts the
//! next answers (429 with Retry-After, 5xx, the provider's rate-limit code, its permanent
//! error, a slow answer, no answer at all). Also: the hostile corpus and escalations built
//! around its lines. [`ChatServer::start_tls`] serves HTTPS with a given certificate.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The credential in each server's URL.
pub const TOKEN: &str = "t0ken-SECRET-4f1c";

#[derive(Clone, Debug)]
pub enum Provider {
    Slack,
    Feishu { secret: Option<String> },
    DingTalk { secret: Option<String> },
    WeCom,
    Webhook { secret: Option<String> },
}

impl Provider {
    /// The receiver `type` that talks to it.
    pub fn receiver_type(&self) -> &'static str {
        match self {
            Provider::Slack => "slack",
            Provider::Feishu { .. } => "feishu",
            Provider::DingTalk { .. } => "dingtalk",
            Provider::WeCom => "wecom",
            Provider::Webhook { .. } => "webhook",
        }
    }

    /// The signing secret the server verifies, if any.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Provider::Feishu { secret }
            | Provider::DingTalk { secret }
            | Provider::Webhook { secret } => secret.as_deref(),
            Provider::Slack | Provider::WeCom => None,
        }
    }
}

/// The message of the provider's answer to [`Script::Permanent`]: an error it documents as
/// final (a bad payload, a missing keyword, a removed webhook).
pub fn permanent_error(p: &Provider) -> &'static str {
    match p {
        Provider::Slack => "invalid_payload",
        Provider::Feishu { .. } => "Key Words Not Found",
        Provider::DingTalk { .. } => "keywords not in content",
        Provider::WeCom => "invalid webhook url, hint: [1700000000_1] key not found",
        Provider::Webhook { .. } => "unknown event type",
    }
}

/// A scripted answer, used instead of the normal one for the next request.
#[derive(Clone, Debug)]
pub enum Script {
    /// This status, body and optional Retry-After header.
    Http {
        status: u16,
        body: String,
        retry_after: Option<String>,
    },
    /// The provider's own "rate limited" answer (an HTTP 429 for Slack and the webhook).
    RateLimited,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// The provider's own answer to a request it will never take ([`permanent_error`]).
    Permanent,
    /// Never answer: the request is recorded as it arrives, and the connection stays open
    /// until the client gives up.
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub raw: Vec<u8>,
    pub body: Value,
    /// `None` when the server accepted it; else the problem it answered with.
    pub refused: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    provider: Provider,
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Script>>,
}

pub struct ChatServer {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT`.
    base: String,
    state: Arc<State>,
    _runtime: tokio::runtime::Runtime,
}

impl ChatServer {
    pub fn start(provider: Provider) -> ChatServer {
        ChatServer::serve(provider, None)
    }

    /// Serves HTTPS as `localhost` with the PEM certificate chain `cert` and its key `key`.
    pub fn start_tls(
        provider: Provider,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> ChatServer {
        ChatServer::serve(provider, Some((cert, key)))
    }

    fn serve(provider: Provider, tls: Option<(&std::path::Path, &std::path::Path)>) -> ChatServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(State {
            provider,
            received: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let s = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move { handle(s, method, uri, headers, body).await }
            },
        );
        let base = match tls {
            None => {
                runtime.spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
                format!("http://{addr}")
            }
            Some((cert, key)) => {
                let listener = crate::common::tls::TlsListener::new(listener, cert, key);
                runtime.spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
                format!("https://localhost:{}", addr.port())
            }
        };
        ChatServer {
            addr,
            base,
            state,
            _runtime: runtime,
        }
    }

    /// The webhook URL a receiver is configured with.
    pub fn url(&self) -> String {
        let base = &self.base;
        match self.state.provider {
            Provider::Slack => format!("{base}/services/T000/B000/{TOKEN}"),
            Provider::Feishu { .. } => format!("{base}/open-apis/bot/v2/hook/{TOKEN}"),
            Provider::DingTalk { .. } => format!("{base}/robot/send?access_token={TOKEN}"),
            Provider::WeCom => format!("{base}/cgi-bin/webhook/send?key={TOKEN}"),
            Provider::Webhook { .. } => format!("{base}/hooks/logward/{TOKEN}"),
        }
    }

    pub fn provider(&self) -> &Provider {
        &self.state.provider
    }

    /// Answers the next request with `s` (after those already scripted).
    pub fn then(&self, s: Script) {
        self.state.script.lock().unwrap().push_back(s);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The requests it accepted.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.refused.is_none())
            .collect()
    }

    /// Waits (up to 20 s) until `n` requests were accepted.
    pub fn wait_accepted(&self, n: usize) -> Vec<Received> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "waited for {n} accepted requests, got {}: {:#?}",
                got.len(),
                self.received()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn handle(
    s: Arc<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let script = s.script.lock().unwrap().pop_front();
    if let Some(Script::Slow(d)) = &script {
        tokio::time::sleep(*d).await;
    }
    let at = Instant::now();
    let mut rec = Received {
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        raw: body.to_vec(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        refused: None,
        at,
    };
    if let Some(Script::Hang) = script {
        rec.refused = Some("no answer: hung".into());
        s.received.lock().unwrap().push(rec);
        return std::future::pending().await;
    }
    let verdict = if method != Method::POST {
        Err("not a POST".to_string())
    } else {
        verify(&s.provider, &rec)
    };
    let response = match (&verdict, script) {
        (Err(problem), _) => refuse(&s.provider, problem),
        (
            Ok(()),
            Some(Script::Http {
                status,
                body,
                retry_after,
            }),
        ) => {
            let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
            if let Some(ra) = retry_after {
                r.headers_mut().insert("retry-after", ra.parse().unwrap());
            }
            rec.refused = Some(format!("scripted HTTP {status}"));
            r
        }
        (Ok(()), Some(Script::RateLimited)) => {
            rec.refused = Some("scripted rate limit".into());
            rate_limited(&s.provider)
        }
        (Ok(()), Some(Script::Permanent)) => {
            rec.refused = Some("scripted permanent error".into());
            permanent(&s.provider)
        }
        (Ok(()), _) => ok(&s.provider),
    };
    if let Err(p) = verdict {
        rec.refused = Some(p);
    }
    s.received.lock().unwrap().push(rec);
    response
}

fn json_response(status: u16, v: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn ok(p: &Provider) -> Response {
    match p {
        Provider::Slack => (StatusCode::OK, "ok").into_response(),
        Provider::Feishu { .. } => json_response(200, json!({"code":0,"msg":"success","data":{}})),
        Provider::DingTalk { .. } | Provider::WeCom => {
            json_response(200, json!({"errcode":0,"errmsg":"ok"}))
        }
        Provider::Webhook { .. } => (StatusCode::NO_CONTENT, "").into_response(),
    }
}

fn rate_limited(p: &Provider) -> Response {
    match p {
        Provider::Slack | Provider::Webhook { .. } => {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, "rate_limited").into_response();
            r.headers_mut().insert("retry-after", "3".parse().unwrap());
            r
        }
        Provider::Feishu { .. } => json_response(
            200,
            json!({"code":11232,"msg":"frequency limited psm[lark.oapi.demo_bot]","data":{}}),
        ),
        Provider::DingTalk { .. } => json_response(
            200,
            json!({"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}),
        ),
        Provider::WeCom => json_response(
            200,
            json!({"errcode":45009,"errmsg":"api freq out of limit"}),
        ),
    }
}

/// The provider's answer to [`Script::Permanent`], in its own shape.
fn permanent(p: &Provider) -> Response {
    let msg = permanent_error(p);
    match p {
        Provider::Slack | Provider::Webhook { .. } => {
            (StatusCode::BAD_REQUEST, msg).into_response()
        }
        Provider::Feishu { .. } => {
            json_response(200, json!({"code": 19024, "msg": msg, "data": {}}))
        }
        Provider::DingTalk { .. } => json_response(200, json!({"errcode": 310000, "errmsg": msg})),
        Provider::WeCom => json_response(200, json!({"errcode": 93000, "errmsg": msg})),
    }
}

/// The provider's own error shape for a request it does not take.
fn refuse(p: &Provider, problem: &str) -> Response {
    match p {
        Provider::Slack => {
            let (status, body) = if problem.starts_with("path") {
                (404, "no_service")
            } else if problem.starts_with("json") {
                (400, "invalid_payload")
            } else {
                (400, "invalid_blocks")
            };
            (StatusCode::from_u16(status).unwrap(), body).into_response()
        }
        Provider::Feishu { .. } => {
            let code = if problem.starts_with("sign") {
                19021
            } else if problem.starts_with("path") {
                19001
            } else {
                9499
            };
            json_response(200, json!({"code": code, "msg": problem, "data": {}}))
        }
        Provider::DingTalk { .. } => {
            let code = if problem.starts_with("path") {
                300001
            } else {
                310000
            };
            json_response(200, json!({"errcode": code, "errmsg": problem}))
        }
        Provider::WeCom => {
            let code = if problem.starts_with("path") {
                93000
            } else {
                40008
            };
            json_response(200, json!({"errcode": code, "errmsg": problem}))
        }
        Provider::Webhook { .. } => {
            let status = if problem.starts_with("sign") {
                401
            } else {
                400
            };
            (StatusCode::from_u16(status).unwrap(), problem.to_string()).into_response()
        }
    }
}

fn query_param(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn expect(cond: bool, problem: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(problem()) }
}

fn verify(p: &Provider, r: &Received) -> Result<(), String> {
    let ct = r.header("content-type").unwrap_or("");
    expect(ct.starts_with("application/json"), || {
        format!("json: content type {ct:?}")
    })?;
    expect(!r.body.is_null(), || "json: body is not JSON".into())?;
    let b = &r.body;
    match p {
        Provider::Slack => {
            expect(r.path == format!("/services/T000/B000/{TOKEN}"), || {
                "path: no such webhook".into()
            })?;
            let mut k = keys(b);
            k.sort();
            expect(k == ["blocks", "text"], || {
                format!("schema: top-level keys {k:?}")
            })?;
            let text = b["text"].as_str().unwrap_or("");
            expect(!text.is_empty() && text.chars().count() <= 40_000, || {
                "schema: text".into()
            })?;
            let blocks = b["blocks"].as_array().ok_or("schema: blocks")?;
            expect(!blocks.is_empty() && blocks.len() <= 50, || {
                "schema: block count".into()
            })?;
            let total: usize = r.raw.len();
            expect(total < 13_000, || {
                format!("schema: payload of {total} bytes")
            })?;
            for block in blocks {
                match block["type"].as_str() {
                    Some("header") => {
                        expect(block["text"]["type"] == "plain_text", || {
                            "schema: header type".into()
                        })?;
                        let t = block["text"]["text"].as_str().unwrap_or("");
                        expect(!t.is_empty() && t.chars().count() <= 150, || {
                            format!("schema: header of {} chars", t.chars().count())
                        })?;
                    }
                    Some("section") => {
                        if let Some(t) = block.get("text") {
                            expect(t["type"] == "mrkdwn" || t["type"] == "plain_text", || {
                                "schema: section text type".into()
                            })?;
                            let n = t["text"].as_str().map_or(0, |s| s.chars().count());
                            expect(n > 0 && n <= 3000, || {
                                format!("schema: section text of {n} chars")
                            })?;
                        }
                        if let Some(f) = block.get("fields") {
                            let f = f.as_array().ok_or("schema: fields")?;
                            expect(f.len() <= 10, || "schema: more than 10 fields".into())?;
                            for field in f {
                                let n = field["text"].as_str().map_or(0, |s| s.chars().count());
                                expect(field["type"] == "mrkdwn" && n > 0 && n <= 2000, || {
                                    "schema: field".into()
                                })?;
                            }
                        }
                        expect(
                            block.get("text").is_some() || block.get("fields").is_some(),
                            || "schema: empty section".into(),
                        )?;
                    }
                    Some("context") => {
                        let e = block["elements"]
                            .as_array()
                            .ok_or("schema: context elements")?;
                        expect(!e.is_empty() && e.len() <= 10, || "schema: context".into())?;
                    }
                    other => return Err(format!("schema: block type {other:?}")),
                }
            }
            Ok(())
        }
        Provider::Feishu { secret } => {
            expect(r.path == format!("/open-apis/bot/v2/hook/{TOKEN}"), || {
                "path: incoming webhook access token invalid".into()
            })?;
            if let Some(secret) = secret {
                let ts = b["timestamp"]
                    .as_str()
                    .ok_or("sign match fail: no timestamp")?;
                let t: u64 = ts.parse().map_err(|_| "sign match fail: timestamp")?;
                expect(now().abs_diff(t) <= 3600, || {
                    "sign match fail or timestamp is not within one hour from current time".into()
                })?;
                let key = format!("{ts}\n{secret}");
                let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
                let sign = b["sign"].as_str().unwrap_or("");
                let sig = base64::engine::general_purpose::STANDARD
                    .decode(sign)
                    .unwrap_or_default();
                mac.verify_slice(&sig).map_err(|_| {
                    "sign match fail or timestamp is not within one hour from current time"
                        .to_string()
                })?;
            } else {
                expect(b.get("sign").is_none(), || "schema: unexpected sign".into())?;
            }
            let mut k: Vec<&str> = keys(b)
                .into_iter()
                .filter(|k| !matches!(*k, "timestamp" | "sign"))
                .collect();
            k.sort();
            expect(k == ["card", "msg_type"], || {
                format!("Bad Request: keys {k:?}")
            })?;
            expect(b["msg_type"] == "interactive", || {
                "Bad Request: msg_type".into()
            })?;
            expect(r.raw.len() <= 20 * 1024, || "message too large".into())?;
            let card = &b["card"];
            expect(card["header"]["title"]["tag"] == "plain_text", || {
                "Bad Request: header".into()
            })?;
            expect(card["header"]["template"].is_string(), || {
                "Bad Request: template".into()
            })?;
            let elements = card["elements"].as_array().ok_or("Bad Request: elements")?;
            for e in elements {
                match e["tag"].as_str() {
                    Some("hr") => {}
                    Some("div") => {
                        let tag = e["text"]["tag"].as_str().unwrap_or("");
                        expect(matches!(tag, "lark_md" | "plain_text"), || {
                            format!("Bad Request: text tag {tag}")
                        })?;
                        expect(e["text"]["content"].is_string(), || {
                            "Bad Request: content".into()
                        })?;
                    }
                    other => return Err(format!("Bad Request: element {other:?}")),
                }
            }
            Ok(())
        }
        Provider::DingTalk { secret } => {
            expect(
                r.path == "/robot/send"
                    && query_param(&r.query, "access_token").as_deref() == Some(TOKEN),
                || "path: token is not exist".into(),
            )?;
            if let Some(secret) = secret {
                let ts =
                    query_param(&r.query, "timestamp").ok_or("sign not match: no timestamp")?;
                let t: u64 = ts.parse().map_err(|_| "invalid timestamp")?;
                expect(
                    ts.len() == 13 && (now() * 1000).abs_diff(t) <= 3_600_000,
                    || "invalid timestamp".into(),
                )?;
                let sign = query_param(&r.query, "sign").unwrap_or_default();
                let sig = base64::engine::general_purpose::STANDARD
                    .decode(&sign)
                    .unwrap_or_default();
                let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                mac.update(format!("{ts}\n{secret}").as_bytes());
                mac.verify_slice(&sig)
                    .map_err(|_| "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]".to_string())?;
            }
            let mut k = keys(b);
            k.sort();
            expect(k == ["at", "markdown", "msgtype"], || {
                format!("schema: keys {k:?}")
            })?;
            expect(b["msgtype"] == "markdown", || "schema: msgtype".into())?;
            expect(b["markdown"]["title"].is_string(), || {
                "schema: title".into()
            })?;
            let text = b["markdown"]["text"].as_str().ok_or("schema: text")?;
            expect(text.chars().count() <= 5000, || {
                "schema: text too long".into()
            })?;
            expect(b["at"]["isAtAll"].is_boolean(), || "schema: isAtAll".into())?;
            expect(
                b["at"]["atMobiles"].is_array() && b["at"]["atUserIds"].is_array(),
                || "schema: at".into(),
            )?;
            Ok(())
        }
        Provider::WeCom => {
            expect(
                r.path == "/cgi-bin/webhook/send"
                    && query_param(&r.query, "key").as_deref() == Some(TOKEN),
                || "path: invalid webhook url".into(),
            )?;
            let mut k = keys(b);
            k.sort();
            expect(k == ["markdown", "msgtype"], || {
                format!("invalid message type: keys {k:?}")
            })?;
            expect(b["msgtype"] == "markdown", || "invalid message type".into())?;
            expect(keys(&b["markdown"]) == ["content"], || {
                "markdown keys".into()
            })?;
            let content = b["markdown"]["content"].as_str().ok_or("content")?;
            expect(!content.is_empty() && content.len() <= 4096, || {
                format!("content size {} exceeds limit", content.len())
            })?;
            Ok(())
        }
        Provider::Webhook { secret } => {
            expect(r.path == format!("/hooks/logward/{TOKEN}"), || {
                "path: not found".into()
            })?;
            expect(
                r.header("x-logward-idempotency-key")
                    .is_some_and(|k| !k.is_empty()),
                || "schema: no X-Logward-Idempotency-Key".into(),
            )?;
            if let Some(secret) = secret {
                let h = r
                    .header("x-logward-signature")
                    .ok_or("signature: missing")?;
                let (t, v1) = h
                    .split_once(',')
                    .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
                    .ok_or("signature: malformed")?;
                let tn: u64 = t.parse().map_err(|_| "signature: t")?;
                expect(now().abs_diff(tn) <= 300, || {
                    "signature: outside tolerance".into()
                })?;
                let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                mac.update(t.as_bytes());
                mac.update(b".");
                mac.update(&r.raw);
                mac.verify_slice(&hex::decode(v1).unwrap_or_default())
                    .map_err(|_| "signature: mismatch".to_string())?;
            }
            for key in logward::escalation::KEYS {
                expect(b.get(key).is_some(), || format!("schema: no `{key}`"))?;
            }
            Ok(())
        }
    }
}

/// The hostile corpus: one record per line, `\n` written as a two-character escape.
pub fn hostile_lines() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hostile/lines.txt"
    );
    let bytes = std::fs::read(path).unwrap();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.replace("\\n", "\n"))
        .collect()
}

/// An escalation of route `errors` to receiver `chat` whose sample, message, service, run id,
/// host and context all carry `line`.
pub fn escalation(line: &str) -> logward::escalation::Escalation {
    let first = line.lines().next().unwrap_or("");
    let v = json!({
        "route": "errors", "receiver": "chat", "kind": "first",
        "group": {"fingerprint": "00000000000000ab"},
        "fingerprint": "00000000000000ab", "level": "error", "service": first,
        "ci_run_id": first, "pattern": "java.exception", "message": first,
        "count": 3, "suppressed": 2,
        "first_seen": "2026-11-22T10:00:00Z", "last_seen": "2026-11-22T10:01:00Z",
        "sample": {
            "ts": "2026-11-22T10:00:00Z", "source": "jenkins", "path": "/var/log/x.log",
            "offset": 0, "line": line, "level": "error", "service": first, "ci_run_id": null,
            "pattern": null, "matched": true, "message": first, "template": null,
            "fingerprint": "00000000000000ab", "fields": {}, "labels": {"job": "jenkins"}
        },
        "context": [first, "INFO connecting to db"],
        "loki_query": "{job=\"jenkins\"} |= \"ERROR db\"",
        "host": first,
    });
    serde_json::from_value(v).unwrap()
}

/// A plain escalation.
pub fn plain_escalation() -> logward::escalation::Escalation {
    escalation("ERROR db timeout after 30s\n\tat com.example.Db.query(Db.java:42)")
}

/// A `Secret` made the way the config makes one (a `webhook` receiver's `url`).
pub fn secret(value: &str) -> logward::config::Secret {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(
        &path,
        format!(
            "[receiver.x]\ntype = \"webhook\"\nurl = \"https://h.example/\"\nsecret = {value:?}\n"
        ),
    )
    .unwrap();
    let c = logward::config::Config::load(&path).unwrap();
    match &c.receivers["x"].kind {
        logward::config::ReceiverKind::Webhook {
            secret: Some(s), ..
        } => s.clone(),
        other => panic!("{other:?}"),
    }
}

/// A closed port on 127.0.0.1.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
