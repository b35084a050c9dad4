//! The HTTP POST every web receiver (`slack`, `feishu`, `dingtalk`, `wecom`, `webhook`)
//! makes: one blocking client per receiver with connect and total timeouts, built on first
//! use ([`LazyClient`], also used by `alertmanager`), and errors that never name the URL.
//! Certificates are checked against the system's roots (`rustls-platform-verifier`: the OS
//! store, `/etc/ssl/certs` on Linux) and those of the receiver's `ca_file`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::blocking::Client;

use super::Outcome;
use crate::config::CaFile;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one whole request may take.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a provider's answer kept for messages.
const ANSWER_BYTES: usize = 300;

/// What the provider answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

/// A blocking HTTP client, built at its first use. Receivers are made inside the agent's
/// async runtime but send from their own threads, and reqwest's blocking client starts a
/// runtime of its own when built (and stops it when dropped): built inside the agent's
/// runtime, it panics ("Cannot drop a runtime in a context where blocking is not allowed").
pub struct LazyClient {
    client: Option<Client>,
    connect: Duration,
    total: Duration,
    /// Trusted on top of the system's roots (`ca_file`).
    roots: Vec<reqwest::Certificate>,
}

impl LazyClient {
    /// [`CONNECT_TIMEOUT`] and [`TOTAL_TIMEOUT`]; the system's roots, and those of `ca_file`.
    pub fn new(ca_file: Option<&CaFile>) -> LazyClient {
        LazyClient {
            client: None,
            connect: CONNECT_TIMEOUT,
            total: TOTAL_TIMEOUT,
            roots: ca_file.map(|c| c.web().to_vec()).unwrap_or_default(),
        }
    }

    /// The client, built now if it was not yet; the error says why it cannot be.
    pub fn get(&mut self) -> Result<&Client, String> {
        if self.client.is_none() {
            let built = Client::builder()
                .connect_timeout(self.connect)
                .timeout(self.total)
                .tls_certs_merge(self.roots.iter().cloned())
                .build()
                .map_err(|e| format!("cannot build an HTTP client: {}", chain(e)))?;
            self.client = Some(built);
        }
        self.client
            .as_ref()
            .ok_or_else(|| "cannot build an HTTP client".to_string())
    }
}

/// One receiver's HTTP client.
pub struct Poster {
    receiver: Arc<str>,
    client: LazyClient,
}

impl Poster {
    pub fn new(receiver: Arc<str>) -> Poster {
        Poster {
            receiver,
            client: LazyClient::new(None),
        }
    }

    /// Also trusts the certificates of `ca_file`.
    pub fn with_ca_file(mut self, ca_file: Option<&CaFile>) -> Poster {
        self.client = LazyClient {
            connect: self.client.connect,
            total: self.client.total,
            ..LazyClient::new(ca_file)
        };
        self
    }

    /// Shorter (or longer) timeouts, for tests.
    pub fn with_timeouts(mut self, connect: Duration, total: Duration) -> Poster {
        self.client.connect = connect;
        self.client.total = total;
        self
    }

    pub fn receiver(&self) -> &str {
        &self.receiver
    }

    /// POSTs `body` to a provider that answers 200 with a result code in its body:
    /// another status is judged by it, a 200 by `judge` (receiver, body).
    pub fn post_coded(
        &mut self,
        url: &str,
        body: Vec<u8>,
        judge: fn(&str, &str) -> Outcome,
    ) -> Outcome {
        match self.post(url, &[], body) {
            Ok(answer) if answer.status == 200 => judge(self.receiver(), &answer.body),
            Ok(answer) => self.by_status(&answer, &answer.body),
            Err(o) => o,
        }
    }

    /// POSTs `body` as `application/json; charset=utf-8` with `headers`. A failure to send
    /// (connection, timeout) is a [`Outcome::Retry`] whose reason names the receiver, not the
    /// URL.
    pub fn post(
        &mut self,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, Outcome> {
        let receiver = &self.receiver;
        let client = self.client.get().map_err(|e| Outcome::Retry {
            after: None,
            reason: format!("receiver `{receiver}`: {e}"),
        })?;
        let mut req = client
            .post(url)
            .header("content-type", "application/json; charset=utf-8");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.body(body).send().map_err(|e| Outcome::Retry {
            after: None,
            reason: format!("receiver `{}`: POST failed: {}", self.receiver, chain(e)),
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let body = resp.text().unwrap_or_default();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    /// The outcome of an HTTP status that is not a success: 408, 429 and 5xx are retried,
    /// other codes are not. `what` is the provider's message.
    pub fn by_status(&self, a: &Answer, what: &str) -> Outcome {
        let reason = format!(
            "receiver `{}`: HTTP {}: {}",
            self.receiver,
            a.status,
            short(what)
        );
        if a.status == 408 || a.status == 429 || a.status >= 500 {
            Outcome::Retry {
                after: a.retry_after,
                reason,
            }
        } else {
            Outcome::Rejected { reason }
        }
    }
}

/// An error and its causes, without the URL reqwest puts in its message.
pub fn chain(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    let mut out = parts.join(": ");
    if timeout && !out.contains("timed out") {
        out.push_str(" (timed out)");
    }
    out
}

/// How a chat provider says in a 200 answer whether it took the message: a code
/// field (0 = taken), a message field, and which codes mean "try again".
pub struct CodeRules<'a> {
    pub provider: &'a str,
    /// The code's key, then alternatives some deployments use.
    pub code: &'a [&'a str],
    pub message: &'a [&'a str],
    /// Codes that mean "try again", with the wait the provider asks for, if any.
    pub retry: &'a [(i64, Option<Duration>)],
}

/// The outcome of a 200 answer that carries a result code in its JSON body.
pub fn judge_code(receiver: &str, body: &str, rules: &CodeRules<'_>) -> Outcome {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let first = |keys: &[&str]| keys.iter().find_map(|k| v.get(*k));
    let msg = first(rules.message)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    let provider = rules.provider;
    let code_key = rules.code.first().copied().unwrap_or("code");
    match first(rules.code).and_then(serde_json::Value::as_i64) {
        Some(0) => Outcome::Accepted {
            answer: short(body),
        },
        Some(code) => {
            let reason = format!(
                "receiver `{receiver}`: {provider} {code_key} {code}: {}",
                short(msg)
            );
            match rules.retry.iter().find(|(c, _)| *c == code) {
                Some((_, after)) => Outcome::Retry {
                    after: *after,
                    reason,
                },
                None => Outcome::Rejected { reason },
            }
        }
        None => Outcome::Rejected {
            reason: format!(
                "receiver `{receiver}`: {provider} answered without {code_key}: {}",
                short(body)
            ),
        },
    }
}

/// A provider's answer, cut for a message.
pub fn short(s: &str) -> String {
    let s = s.trim();
    crate::escalation::clean(crate::escalation::cut_at(s, ANSWER_BYTES))
}

/// `Retry-After`: seconds, or an HTTP date.
pub fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Seconds since the Unix epoch.
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn a_refused_connection_is_a_retry_that_does_not_name_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/hooks/T0/B0/tok3n-s3cret");
        let mut p = Poster::new("chat".into());
        let Err(Outcome::Retry { reason, .. }) = p.post(&url, &[], b"{}".to_vec()) else {
            panic!("not a retry")
        };
        assert!(
            reason.starts_with("receiver `chat`: POST failed: "),
            "{reason}"
        );
        assert!(
            !reason.contains("tok3n") && !reason.contains("/hooks"),
            "{reason}"
        );
    }
}
