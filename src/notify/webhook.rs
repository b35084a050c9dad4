//! `webhook`: POSTs the escalation object (SPEC §5) as JSON (WIRE.md §6). Every request has
//! `X-Logward-Idempotency-Key` (the same on every retry of one escalation) and, with `secret`,
//! `X-Logward-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` over the exact
//! bytes sent. Custom `headers` from the config go along. 2xx is delivered; 408, 429 (with
//! `Retry-After`) and 5xx are retried; other codes are not.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::post::{Poster, unix_secs};
use super::{Outcome, Sender};
use crate::config::Secret;
use crate::escalation::Escalation;

pub const SIGNATURE_HEADER: &str = "x-logward-signature";
pub const IDEMPOTENCY_HEADER: &str = "x-logward-idempotency-key";

pub struct Webhook {
    url: Secret,
    secret: Option<Secret>,
    headers: Vec<(String, Secret)>,
    http: Poster,
}

impl Webhook {
    pub fn new(
        name: Arc<str>,
        url: Secret,
        secret: Option<Secret>,
        headers: Vec<(String, Secret)>,
    ) -> Webhook {
        Webhook {
            url,
            secret,
            headers,
            http: Poster::new(name),
        }
    }

    pub fn with_http(mut self, http: Poster) -> Webhook {
        self.http = http;
        self
    }
}

/// `t=<t>,v1=<hex HMAC-SHA256(key = secret, message = "<t>.<body>")>`.
pub fn signature(t: u64, body: &[u8], secret: &str) -> String {
    let hex = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map(|mut m| {
            m.update(format!("{t}.").as_bytes());
            m.update(body);
            hex::encode(m.finalize().into_bytes())
        })
        .unwrap_or_default();
    format!("t={t},v1={hex}")
}

impl Sender for Webhook {
    fn send(&mut self, esc: &Escalation, key: &str) -> Outcome {
        let body = match serde_json::to_vec(esc) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Rejected {
                    reason: format!("receiver `{}`: cannot encode: {e}", self.http.receiver()),
                };
            }
        };
        let signed = self
            .secret
            .as_ref()
            .map(|s| signature(unix_secs(), &body, s.expose()));
        let mut headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        headers.push((IDEMPOTENCY_HEADER, key));
        if let Some(s) = &signed {
            headers.push((SIGNATURE_HEADER, s));
        }
        let answer = match self.http.post(self.url.expose(), &headers, body) {
            Ok(a) => a,
            Err(o) => return o,
        };
        if (200..300).contains(&answer.status) {
            return Outcome::Accepted {
                answer: format!(
                    "HTTP {} {}",
                    answer.status,
                    super::post::short(&answer.body)
                )
                .trim_end()
                .to_string(),
            };
        }
        self.http.by_status(&answer, &answer.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_wire_test_vector() {
        assert_eq!(
            signature(1_700_000_000, br#"{"text":"hi"}"#, "secret"),
            "t=1700000000,v1=3ad1ab8e3e2036926574b48bb349a6926291abb28309d44d18066d4f51de2112"
        );
    }
}
