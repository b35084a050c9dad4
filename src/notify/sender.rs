//! The delivery contract every receiver type implements: one synchronous attempt, and what
//! the provider made of it.
//!
//! Owns: the three outcomes of an attempt. Must not: retry, back off, rate-limit or keep the
//! outbox (that is [`super::worker`] and [`super::outbox`]); a sender makes exactly one try.

use crate::escalation::Escalation;

/// What one attempt to deliver an escalation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider took it; `answer` is what it said (shown by `logward notify test`).
    Accepted { answer: String },
    /// Try again: timeouts, connection errors, 5xx, 429 (with Retry-After when given), a provider's own "rate limited" code inside a 200.
    Retry {
        after: Option<std::time::Duration>,
        reason: String,
    },
    /// Never retried: other 4xx, signature/keyword errors, a malformed request. `reason` carries the provider's message, NEVER the url/token/secret.
    Rejected { reason: String },
}

pub trait Sender: Send {
    /// One attempt. `key` is the escalation's idempotency key (stable across retries and restarts).
    fn send(&mut self, esc: &Escalation, key: &str) -> Outcome;
}
