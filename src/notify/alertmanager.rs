//! The `alertmanager` receiver: each escalation becomes one alert, posted as a JSON array of one
//! to `POST {url}/api/v2/alerts` of every configured Alertmanager (an HA set gets all of them).
//!
//! Owns the alert's shape (labels, annotations, `startsAt`/`endsAt`) and reading the answers.
//! Must not: retry, sleep, or put a url or credential into an [`Outcome`] or error.
//!
//! **Identity.** Alertmanager identifies an alert by its label set alone, so labels hold only
//! what names the group, the same on every agent: `alertname` (the pattern id, else the route
//! name), `route`, the route's `group_by` keys with the group's values (`fingerprint` under the
//! default grouping), `service`, `severity` (the level), and the keys of `labels_from`. The host
//! is an annotation, not a label: agents that send the same group then make one alert there
//! (fleet-wide dedup), and the annotation says which host spoke last. `labels_from = ["host"]`
//! opts into one alert per host.
//!
//! **Lifetime.** `startsAt` is the window's first event, `endsAt` the group's last event plus
//! `resolve_after`. `first`, `repeat` and `summary` all (re)send the alert, each moving `endsAt`
//! on; a group that goes quiet resolves by itself `resolve_after` after its last event, and one
//! that keeps firing across windows is re-sent by each window's summary before that. A summary
//! does not resolve the alert explicitly: it closes a window, not the problem (the next window
//! may already be firing), and with several agents on one alert an explicit resolve from one of
//! them would end it for all (Alertmanager keeps the newest resolved `endsAt`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde_json::Value;

use super::post::{LazyClient, retry_after};
use super::{Outcome, Sender};
use crate::config::{self, HttpAuth};
use crate::escalation::{Escalation, clean, cut_at};
use crate::event::Timestamp;
use crate::pattern::level_name;
use crate::route::value_of;

/// Labels every alert may carry; `labels_from` cannot name them.
pub const FIXED_LABELS: [&str; 5] = ["alertname", "route", "service", "severity", "fingerprint"];

/// A label value is cut here: labels name a group, they are not a place for text.
const LABEL_MAX_BYTES: usize = 256;
/// The sample annotation: at most this many lines, and bytes, then "…cut".
const SAMPLE_MAX_LINES: usize = 30;
const SAMPLE_MAX_BYTES: usize = 4000;
/// Context lines in the `context` annotation (the last ones).
const CONTEXT_LINES: usize = 10;
/// The part of the provider's answer kept in a reason.
const ANSWER_MAX_BYTES: usize = 300;

/// One Alertmanager alert (API v2 `postableAlert`).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
}

/// Sends escalations to the Alertmanagers of one `[receiver.NAME]`.
pub struct Alertmanager {
    name: Arc<str>,
    cfg: config::Alertmanager,
    client: LazyClient,
}

impl Alertmanager {
    /// No connection and no HTTP client yet: the client is built at the first send, on the
    /// receiver's own thread ([`LazyClient`]).
    pub fn new(name: Arc<str>, cfg: &config::Alertmanager) -> Alertmanager {
        Alertmanager {
            name,
            cfg: cfg.clone(),
            client: LazyClient::new(cfg.ca_file.as_ref()),
        }
    }

    /// Posts `alerts` (a JSON array) to every url and reads the answers: accepted when one
    /// Alertmanager took it; rejected when none did and the alert itself was refused (400) or
    /// every one refused it; to retry otherwise.
    pub fn post(&mut self, alerts: &Value) -> Outcome {
        let body = alerts.to_string();
        let client = match self.client.get() {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    reason: format!("receiver `{}`: {e}", self.name),
                };
            }
        };
        let mut answers = Vec::with_capacity(self.cfg.urls.len());
        let (mut accepted, mut invalid, mut rejected) = (0, false, 0);
        let mut after: Option<Duration> = None;
        for (i, url) in self.cfg.urls.iter().enumerate() {
            let answer = post_one(client, self.cfg.auth.as_ref(), url, &body);
            let label = format!("alertmanager {} of {}", i + 1, self.cfg.urls.len());
            match answer {
                Answer::Accepted(status) => {
                    accepted += 1;
                    answers.push(format!("{label}: {status}"));
                }
                Answer::Retry(wait, reason) => {
                    after = after.max(wait);
                    answers.push(format!("{label}: {reason}"));
                }
                Answer::Rejected(status, reason) => {
                    rejected += 1;
                    invalid |= status == StatusCode::BAD_REQUEST;
                    answers.push(format!("{label}: {reason}"));
                }
            }
        }
        let all = answers.join("; ");
        if accepted > 0 {
            Outcome::Accepted { answer: all }
        } else if invalid || rejected == self.cfg.urls.len() {
            Outcome::Rejected { reason: all }
        } else {
            Outcome::Retry { after, reason: all }
        }
    }
}

/// Posts `body` to one Alertmanager and reads its answer.
fn post_one(
    client: &reqwest::blocking::Client,
    auth: Option<&HttpAuth>,
    url: &reqwest::Url,
    body: &str,
) -> Answer {
    let mut endpoint = url.clone();
    let path = format!("{}/api/v2/alerts", url.path().trim_end_matches('/'));
    endpoint.set_path(&path);
    let mut req = client
        .post(endpoint)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(body.to_string());
    match auth {
        None => {}
        Some(HttpAuth::Basic { username, password }) => {
            req = req.basic_auth(username, Some(password.expose()));
        }
        Some(HttpAuth::Bearer(token)) => {
            let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) else {
                return Answer::Rejected(
                    StatusCode::BAD_REQUEST,
                    "`bearer_token` holds characters a header cannot".into(),
                );
            };
            v.set_sensitive(true);
            req = req.header(AUTHORIZATION, v);
        }
    }
    let resp = match req.send() {
        Ok(r) => r,
        Err(e) => return Answer::Retry(None, transport_error(&e)),
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after);
    let text = resp.text().unwrap_or_default();
    let said = provider_message(&text);
    let reason = match said.is_empty() {
        true => format!("{status}"),
        false => format!("{status}: {said}"),
    };
    if status.is_success() {
        Answer::Accepted(status)
    } else if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Answer::Retry(retry_after, reason)
    } else {
        Answer::Rejected(status, reason)
    }
}

enum Answer {
    Accepted(StatusCode),
    Retry(Option<Duration>, String),
    Rejected(StatusCode, String),
}

/// A transport failure in words, without the url reqwest would put in its message.
fn transport_error(e: &reqwest::Error) -> String {
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let cause = root.to_string();
    let cause = match cause.contains("://") {
        true => String::new(),
        false => format!(": {cause}"),
    };
    if e.is_timeout() {
        format!("POST timed out{cause}")
    } else if e.is_connect() {
        format!("POST failed: cannot connect{cause}")
    } else {
        format!("POST failed{cause}")
    }
}

/// Alertmanager answers errors as a JSON string; anything else is shown cut and cleaned.
fn provider_message(text: &str) -> String {
    let text = text.trim();
    let msg = match serde_json::from_str::<Value>(text) {
        Ok(Value::String(s)) => s,
        Ok(Value::Object(o)) => o
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| text.to_string(), str::to_string),
        _ => text.to_string(),
    };
    clean(cut_at(&msg, ANSWER_MAX_BYTES))
}

impl Sender for Alertmanager {
    fn send(&mut self, esc: &Escalation, _key: &str) -> Outcome {
        // An alert is its own idempotency key: a re-send updates the same alert.
        let alert = alert(esc, &self.cfg);
        self.post(&serde_json::json!([alert]))
    }
}

/// The alert for one escalation (see the module doc for what goes where).
pub fn alert(esc: &Escalation, cfg: &config::Alertmanager) -> Alert {
    let mut labels = BTreeMap::new();
    let mut label = |k: String, v: &str| {
        let v = v.trim();
        if !v.is_empty() {
            labels.insert(k, cut_at(v, LABEL_MAX_BYTES).to_string());
        }
    };
    label(
        "alertname".into(),
        esc.pattern.as_deref().unwrap_or(&*esc.route),
    );
    label("route".into(), &esc.route);
    for (k, v) in &esc.group {
        let v = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let k = label_name(k);
        if k != "alertname" && k != "route" {
            label(k, &v);
        }
    }
    if let Some(s) = &esc.service {
        label("service".into(), s);
    }
    if let Some(l) = esc.level {
        label("severity".into(), level_name(l));
    }
    for k in &cfg.labels_from {
        let v = match k.as_str() {
            "host" => Some(esc.host.clone()),
            "ci_run_id" => esc.ci_run_id.clone(),
            other => value_of(other, &esc.sample).map(|v| v.text().into_owned()),
        };
        if let Some(v) = v {
            label(k.clone(), &v);
        }
    }

    let mut annotations = BTreeMap::new();
    let mut note = |k: &str, v: String| {
        if !v.is_empty() {
            annotations.insert(k.to_string(), v);
        }
    };
    let message = esc
        .message
        .as_deref()
        .or_else(|| esc.sample.line.lines().next())
        .unwrap_or("");
    let message = clean(message.lines().next().unwrap_or(""));
    note(
        "summary",
        format!(
            "{} {} in {}: {}",
            esc.count,
            esc.level.map_or("events", level_name),
            esc.service.as_deref().map_or("-".into(), clean),
            message
        ),
    );
    note(
        "description",
        format!(
            "{}: {} events in the window (first {}, last {}), {} not notified before; route {}",
            esc.kind.as_str(),
            esc.count,
            esc.first_seen,
            esc.last_seen,
            esc.suppressed,
            clean(&esc.route),
        ),
    );
    note("message", message);
    note("sample", sample(&esc.sample.line));
    let skip = esc.context.len().saturating_sub(CONTEXT_LINES);
    note(
        "context",
        esc.context[skip..]
            .iter()
            .map(|l| clean(l))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    note("kind", esc.kind.as_str().into());
    note("count", esc.count.to_string());
    note("suppressed", esc.suppressed.to_string());
    note("first_seen", esc.first_seen.to_string());
    note("last_seen", esc.last_seen.to_string());
    note("host", clean(&esc.host));
    if let Some(fp) = esc.fingerprint {
        note("fingerprint", format!("{:016x}", fp.0));
    }
    if let Some(run) = &esc.ci_run_id {
        note("ci_run_id", clean(run));
    }
    if let Some(p) = &esc.pattern {
        note("pattern", clean(p));
    }
    note("loki_query", esc.loki_query.clone());

    let ends = esc
        .last_seen
        .as_nanos()
        .saturating_add(i64::try_from(cfg.resolve_after.as_nanos()).unwrap_or(i64::MAX));
    Alert {
        labels,
        annotations,
        starts_at: esc.first_seen.to_string(),
        ends_at: Timestamp::from_nanos(ends).to_string(),
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: other characters become `_`.
fn label_name(k: &str) -> String {
    let mut out = String::with_capacity(k.len() + 1);
    if !k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.push('_');
    }
    out.extend(
        k.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
    );
    out
}

/// The sample's lines, cleaned, within [`SAMPLE_MAX_LINES`] and [`SAMPLE_MAX_BYTES`]; what
/// does not fit is replaced by a visible "…cut".
fn sample(line: &str) -> String {
    let mut out = String::new();
    let mut cut = false;
    for (i, l) in line.lines().enumerate() {
        let l = clean(l);
        if i == SAMPLE_MAX_LINES || out.len() + l.len() + 1 > SAMPLE_MAX_BYTES {
            cut = true;
            break;
        }
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&l);
    }
    if cut {
        let _ = write!(out, "\n…cut");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_made_valid() {
        assert_eq!(label_name("ci_run_id"), "ci_run_id");
        assert_eq!(label_name("k8s.pod-name"), "k8s_pod_name");
        assert_eq!(label_name("1x"), "_1x");
    }

    #[test]
    fn long_samples_are_cut_visibly() {
        let text = (0..100)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let s = sample(&text);
        assert!(s.ends_with("\n…cut"), "{s}");
        assert_eq!(s.lines().count(), SAMPLE_MAX_LINES + 1);
        assert_eq!(sample("a\nb"), "a\nb");
    }

    #[test]
    fn the_provider_message_is_unquoted() {
        assert_eq!(
            provider_message("\"start time must be before end time\"\n"),
            "start time must be before end time"
        );
        assert_eq!(provider_message(""), "");
    }
}
