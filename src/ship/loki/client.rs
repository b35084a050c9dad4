//! One HTTP attempt to push to Loki, and what Loki's answer means for the push.
//!
//! Owns the request (URL, `Content-Type`, tenant, auth, extra headers, a custom CA, timeouts)
//! and the reading of the status (the same rule as Loki's own clients: retry 429, 5xx and
//! connection errors). Must not: wait, retry or count (the push worker does), or put the URL
//! or a credential in a message: the URL may carry a token.

use std::time::Duration;

use prost::bytes::Bytes;

use crate::config::{HttpAuth, Loki};
use crate::notify::post::{LazyClient, chain, retry_after, short};

/// What an attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: Loki holds the entries.
    Accepted,
    /// 429, 5xx, a connection error or timeout, and the answers that a fix of the config or
    /// the proxy turns into a success (401, 403, 404): try again later.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// 400 and other refusals of the content: Loki will never take it (it may have kept the
    /// valid entries of the push).
    Rejected { status: u16, why: String },
    /// 400 because this Loki does not take structured metadata (2.x, or disabled).
    MetadataRefused,
    /// 413: the body is over a size limit (a proxy's, usually).
    TooLarge,
}

/// The HTTP side of the Loki output. Each push worker has its own [`LazyClient`] (built on
/// the worker's thread, never inside the async runtime; its connection kept alive between
/// pushes), which trusts the system's roots and those of `ca_file`.
pub struct Pusher {
    config: Loki,
}

impl Pusher {
    pub fn new(config: Loki) -> Pusher {
        Pusher { config }
    }

    /// A client for one push worker.
    pub fn client(&self) -> LazyClient {
        LazyClient::new(self.config.ca_file.as_ref())
    }

    /// POSTs `body` (`content_type`) to the push endpoint, giving up after `timeout`.
    pub fn attempt(
        &self,
        client: &mut LazyClient,
        body: Bytes,
        content_type: &str,
        timeout: Duration,
    ) -> Answer {
        let client = match client.get() {
            Ok(c) => c,
            Err(why) => {
                return Answer::Retry { after: None, why };
            }
        };
        let c = &self.config;
        let mut req = client
            .post(c.push_url.expose())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .timeout(timeout);
        if let Some(t) = &c.tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        req = match &c.auth {
            Some(HttpAuth::Basic { username, password }) => {
                req.basic_auth(username, Some(password.expose()))
            }
            Some(HttpAuth::Bearer(token)) => req.bearer_auth(token.expose()),
            None => req,
        };
        for (name, value) in &c.headers {
            req = req.header(name, value.expose());
        }
        let resp = match req.body(body).send() {
            Ok(r) => r,
            Err(e) => {
                return Answer::Retry {
                    after: None,
                    why: format!("push failed: {}", chain(e)),
                };
            }
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Answer::Accepted;
        }
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        judge(status, after, &resp.text().unwrap_or_default())
    }
}

/// The meaning of a status other than 2xx, with Loki's answer `text`.
pub fn judge(status: u16, after: Option<Duration>, text: &str) -> Answer {
    let why = format!("HTTP {status}: {}", short(text));
    match status {
        400 if text.to_ascii_lowercase().contains("structured metadata") => Answer::MetadataRefused,
        413 => Answer::TooLarge,
        401 | 403 | 404 => Answer::Retry {
            after,
            why: format!("{why} (check the url, tenant and credentials of [loki])"),
        },
        408 | 429 | 500.. => Answer::Retry { after, why },
        _ => Answer::Rejected { status, why },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_answers_are_judged_as_its_own_clients_do() {
        let s = Duration::from_secs;
        assert_eq!(
            judge(429, Some(s(3)), "ingestion rate limit exceeded"),
            Answer::Retry {
                after: Some(s(3)),
                why: "HTTP 429: ingestion rate limit exceeded".into()
            }
        );
        assert!(matches!(judge(503, None, ""), Answer::Retry { .. }));
        assert_eq!(
            judge(400, None, "entry too far behind"),
            Answer::Rejected {
                status: 400,
                why: "HTTP 400: entry too far behind".into()
            }
        );
        assert_eq!(
            judge(
                400,
                None,
                "stream '{job=\"a\"}' includes structured metadata, but this feature is disallowed"
            ),
            Answer::MetadataRefused
        );
        assert_eq!(judge(413, None, ""), Answer::TooLarge);
        assert!(matches!(
            judge(401, None, "no org id"),
            Answer::Retry { .. }
        ));
    }
}
