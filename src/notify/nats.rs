//! The `nats` receiver: publishes each escalation to a NATS JetStream stream (WIRE.md §8b) and
//! waits for the stream's acknowledgement.
//!
//! Owns: the connection (tried at each attempt until one reaches the server; from then on
//! the client reconnects by itself, and a publish made while it is away times out and is
//! retried), making sure the stream exists (created with file storage over the template's
//! subject filter when it does not; an existing stream must capture the subject), the
//! subject of each escalation ([`super::subject`]), and reading the PubAck. The message is
//! the SPEC §5 object, byte for byte what the `file` receiver writes, with
//! `Nats-Msg-Id: <idempotency key>`: the stream drops a re-send of one escalation (a retry
//! after a lost ack, a restart after a crash) inside its duplicate window.
//!
//! Must not: retry, sleep between attempts, or put the url, a token, a password or
//! credentials into an [`Outcome`] (every reason is built here from error kinds and the
//! server's own words, never from the url).
//!
//! **Runtime.** A [`Sender`] is synchronous and runs on its receiver's delivery thread, so
//! this one owns a tokio runtime, built at the first attempt (not in [`Nats::new`], which may
//! run inside the agent's runtime, where another one cannot be dropped). It has one worker
//! thread rather than being current-thread: the client's connection task must answer the
//! server's PINGs between escalations too, or the server drops an idle connection as stale
//! and the next escalation's first attempt fails on it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::{CreateStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, StorageType};
use async_nats::jetstream::{self, Context};
use async_nats::{ConnectErrorKind, ConnectOptions};
use tokio::runtime::Runtime;

use super::{Outcome, Sender};
use crate::config::{self, NatsAuth};
use crate::escalation::Escalation;

/// Connecting, TCP and TLS and the login, must be done within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A JetStream API answer (stream info, create) and a publish's ack must come within this.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt as a whole: connecting, the stream, the publish. Within the agent's drain at
/// shutdown, like the HTTP receivers' 10 s.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The duplicate window of a stream this receiver creates: two of the longest waits between
/// retries ([`super::worker::RETRY_CAP`]), so that a publish whose ack was lost and that is
/// retried after the longest backoff is still recognised. The server's default is 2 minutes.
/// A stream that exists keeps its own.
pub const DUPLICATE_WINDOW: Duration = super::worker::RETRY_CAP.saturating_mul(2);

/// Publishes escalations for one `[receiver.NAME]` of `type = "nats"`.
pub struct Nats {
    name: Arc<str>,
    cfg: config::Nats,
    runtime: Option<Runtime>,
    link: Option<Context>,
}

/// Why an attempt did not end in an ack; the receiver's name is put before the reason.
enum Failure {
    Retry(String),
    Rejected(String),
}

type Step<T> = Result<T, Failure>;

impl Nats {
    /// Connects nothing yet: the first [`Sender::send`] does.
    pub fn new(name: Arc<str>, cfg: &config::Nats) -> Nats {
        Nats {
            name,
            cfg: cfg.clone(),
            runtime: None,
            link: None,
        }
    }

    fn attempt(&mut self, esc: &Escalation, key: &str) -> Step<String> {
        let body = serde_json::to_vec(esc)
            .map_err(|e| Failure::Rejected(format!("cannot encode the escalation: {e}")))?;
        let subject = self.cfg.subject.render(esc);
        let runtime = match &mut self.runtime {
            Some(runtime) => runtime,
            None => self.runtime.insert(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(format!("receiver:{}:nats", self.name))
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        Failure::Retry(format!("cannot start the NATS client's runtime: {e}"))
                    })?,
            ),
        };
        let (link, cfg) = (&mut self.link, &self.cfg);
        runtime.block_on(async {
            tokio::time::timeout(ATTEMPT_TIMEOUT, publish(link, cfg, subject, body, key))
                .await
                .unwrap_or_else(|_| {
                    Err(Failure::Retry(format!(
                        "no answer within {}s",
                        ATTEMPT_TIMEOUT.as_secs()
                    )))
                })
        })
    }
}

impl Sender for Nats {
    fn send(&mut self, esc: &Escalation, key: &str) -> Outcome {
        match self.attempt(esc, key) {
            Ok(answer) => Outcome::Accepted { answer },
            Err(Failure::Retry(reason)) => Outcome::Retry {
                after: None,
                reason: format!("receiver `{}`: {reason}", self.name),
            },
            Err(Failure::Rejected(reason)) => Outcome::Rejected {
                reason: format!("receiver `{}`: {reason}", self.name),
            },
        }
    }
}

/// Connects when `link` has no connection yet, makes sure of the stream, publishes and
/// waits for the ack.
async fn publish(
    link: &mut Option<Context>,
    cfg: &config::Nats,
    subject: String,
    body: Vec<u8>,
    key: &str,
) -> Step<String> {
    let js = match link {
        Some(js) => js,
        None => link.insert(connect(cfg).await?),
    };
    let max_payload = js.client().server_info().max_payload;
    if body.len() > max_payload {
        return Err(Failure::Rejected(format!(
            "the escalation is {} bytes, over the server's max_payload of {max_payload}",
            body.len()
        )));
    }
    let filters = stream_subjects(js, cfg).await?;
    if !filters.iter().any(|f| super::subject::matches(f, &subject)) {
        return Err(Failure::Rejected(format!(
            "stream `{}` does not capture subject `{subject}` (its subjects: {}); add `{}` to its subjects, or set `stream` to the stream that captures them",
            cfg.stream,
            filters.join(", "),
            cfg.subject.filter()
        )));
    }
    let mut message = PublishMessage::build().payload(body.into());
    if !key.is_empty() {
        message = message.message_id(key);
    }
    let sent = match js.send_publish(subject.clone(), message).await {
        Ok(ack) => ack.await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(ack) if ack.duplicate => Ok(format!(
            "stream {} seq {} (duplicate: already stored)",
            ack.stream, ack.sequence
        )),
        Ok(ack) => Ok(format!("stream {} seq {}", ack.stream, ack.sequence)),
        Err(e) => Err(match e.kind() {
            PublishErrorKind::StreamNotFound => Failure::Rejected(format!(
                "no stream captures subject `{subject}` (no responders); a configuration error: check `stream` and `subject`"
            )),
            PublishErrorKind::TimedOut => Failure::Retry(format!(
                "no ack from the stream within {}s",
                ACK_TIMEOUT.as_secs()
            )),
            PublishErrorKind::BrokenPipe => {
                Failure::Retry("the connection broke before the ack".into())
            }
            _ => api_error(&e, "publish failed")
                .unwrap_or_else(|| Failure::Retry(format!("publish failed: {}", cause(&e)))),
        }),
    }
}

/// A connected JetStream context, or why not.
async fn connect(cfg: &config::Nats) -> Step<Context> {
    let mut options = ConnectOptions::new()
        .name("logward")
        .connection_timeout(CONNECT_TIMEOUT)
        .require_tls(cfg.tls);
    if let Some(ca) = &cfg.ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    options = match &cfg.auth {
        None => options,
        Some(NatsAuth::Token(t)) => options.token(t.expose().to_string()),
        Some(NatsAuth::UserPassword { username, password }) => {
            options.user_and_password(username.clone(), password.expose().to_string())
        }
        Some(NatsAuth::Creds(c)) => options
            .credentials(c.expose())
            .map_err(|_| Failure::Rejected("`creds_file` is not a NATS credentials file".into()))?,
    };
    let client = options
        .connect(cfg.server.expose())
        .await
        .map_err(|e| match e.kind() {
            ConnectErrorKind::AuthorizationViolation => Failure::Rejected(format!(
                "the server refused the login (authorization violation): {}",
                match cfg.auth {
                    None => "it wants credentials: set `token`, `username` + `password` or `creds_file`",
                    Some(NatsAuth::Token(_)) => "check the token",
                    Some(NatsAuth::UserPassword { .. }) => "check `username` and the password",
                    Some(NatsAuth::Creds(_)) => "check `creds_file`",
                }
            )),
            ConnectErrorKind::Authentication => {
                Failure::Rejected("cannot sign the server's nonce with the `creds_file` credentials".into())
            }
            ConnectErrorKind::TimedOut => Failure::Retry(format!(
                "cannot connect: no answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            )),
            ConnectErrorKind::Tls => Failure::Retry(format!("TLS failed: {}", cause(&e))),
            _ => Failure::Retry(format!("cannot connect: {}", cause(&e))),
        })?;
    let mut js = jetstream::new(client);
    js.set_timeout(ACK_TIMEOUT);
    Ok(js)
}

/// The subjects the configured stream captures; the stream is created (file storage, the
/// template's filter, [`DUPLICATE_WINDOW`]) when it does not exist.
async fn stream_subjects(js: &Context, cfg: &config::Nats) -> Step<Vec<String>> {
    let wanted = stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![cfg.subject.filter()],
        storage: StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    match js.get_or_create_stream(wanted).await {
        Ok(stream) => Ok(stream.cached_info().config.subjects.clone()),
        Err(e) => Err(match e.kind() {
            CreateStreamErrorKind::JetStreamUnavailable => Failure::Rejected(
                "JetStream does not answer on this server (no responders): enable it (nats-server -js, or `jetstream {}` in its config)".into(),
            ),
            CreateStreamErrorKind::TimedOut => Failure::Retry(format!(
                "no answer from JetStream within {}s",
                ACK_TIMEOUT.as_secs()
            )),
            CreateStreamErrorKind::JetStream(api) if api.error_code() == jetstream::ErrorCode::STREAM_SUBJECT_OVERLAP => Failure::Rejected(format!(
                "cannot create stream `{}` over `{}`: another stream already captures these subjects ({api}); set `stream` to that stream, or change `subject`",
                cfg.stream,
                cfg.subject.filter()
            )),
            CreateStreamErrorKind::JetStream(api) => by_code(&api, &format!("stream `{}`", cfg.stream)),
            _ => Failure::Retry(format!("stream `{}`: {}", cfg.stream, cause(&e))),
        }),
    }
}

/// A JetStream API error somewhere in `e`'s sources, judged by [`by_code`].
fn api_error(e: &(dyn std::error::Error + 'static), what: &str) -> Option<Failure> {
    let mut next = e.source();
    while let Some(err) = next {
        if let Some(api) = err.downcast_ref::<jetstream::Error>() {
            return Some(by_code(api, what));
        }
        next = err.source();
    }
    None
}

/// The server's 5xx answers (JetStream temporarily unavailable, no leader yet) are retried;
/// its 4xx answers (a limit of the stream, a bad request) would be the same again: rejected.
fn by_code(api: &jetstream::Error, what: &str) -> Failure {
    match api.code() {
        500.. => Failure::Retry(format!("{what}: {api}")),
        _ => Failure::Rejected(format!("{what}: {api}")),
    }
}

/// An error and its causes in words. async-nats builds them from error kinds, io errors and
/// the server's `-ERR` text, never from the url.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(err) = next {
        let more = err.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = err.source();
    }
    text
}
