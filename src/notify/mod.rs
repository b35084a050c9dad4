//! Notify: turns the `[receiver.NAME]` tables into senders, each behind its own rate limit.
//!
//! Owns: building each receiver type's [`Sender`] from the validated config (one file per
//! type beside this one, with the provider's wire format and how to read its answer), one
//! rate limiter per receiver (a `governor` GCRA bucket, [`default_rate`] when the config has
//! no `rate`), and taking them apart into [`Lane`]s for the delivery threads ([`worker`]),
//! which keep the durable [`outbox`] and retry.
//!
//! Must not: decide whether or when to escalate, keep windows or counts, or fold what it
//! refused back into a group (that is [`crate::window`], driven through the `refused`
//! callback of [`worker::Delivery`]); choose receivers for an event (that is
//! [`crate::route`]); read the clock other than through the injected [`Clock`]; sleep; put a
//! secret (a webhook URL, a token, a password) into an error message.

pub mod alertmanager;
pub mod console;
pub mod dingtalk;
pub mod email;
pub mod feishu;
pub mod file;
pub mod nats;
pub mod outbox;
pub mod post;
pub mod recent;
pub mod render;
pub mod sender;
pub mod slack;
pub mod subject;
pub mod template;
pub mod webhook;
pub mod wecom;
pub mod worker;

pub use sender::{Outcome, Sender};

use std::collections::BTreeMap;
use std::io;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::units::Rate;
use crate::config::{Receiver, ReceiverKind};
use crate::escalation::Escalation;

pub use governor::clock::{DefaultClock, FakeRelativeClock};

/// Why an escalation did not reach its receiver.
#[derive(Debug)]
pub enum Refused {
    /// Over the receiver's `rate`: nothing was sent. The caller hands the escalation back to
    /// the windows ([`crate::window::Windows::fold`]), which add its events to what this
    /// receiver is owed: they reach it with the group's next escalation, the summary at the
    /// end of the window at the latest.
    RateLimited,
    /// The receiver could not take it.
    Failed(NotifyError),
}

/// An escalation the receiver took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The receiver's `type` (`console`, `file`).
    pub receiver_type: &'static str,
}

/// What went wrong opening or writing a receiver. Messages name the receiver and, for the
/// `file` type, its path; never a secret.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("receiver `{receiver}`: cannot open {}: {source}", path.display())]
    Open {
        receiver: Arc<str>,
        path: PathBuf,
        source: io::Error,
    },
    #[error("receiver `{receiver}`: cannot append to {}: {source}", path.display())]
    Append {
        receiver: Arc<str>,
        path: PathBuf,
        source: io::Error,
    },
    #[error("receiver `{receiver}`: cannot write to stdout: {source}")]
    Stdout {
        receiver: Arc<str>,
        source: io::Error,
    },
    /// A provider did not take the escalation; `reason` never holds a secret.
    #[error("{reason}")]
    Delivery { receiver: Arc<str>, reason: String },
    #[error("no receiver `{0}` is configured; add a [receiver.{0}] table")]
    Unknown(Arc<str>),
    /// An attempt that did not succeed ([`Outcome::Retry`] or [`Outcome::Rejected`]); the
    /// reason names the receiver.
    #[error("{reason}")]
    Attempt { receiver: Arc<str>, reason: String },
}

/// A direct (not keyed) in-memory GCRA limiter on the clock `C`.
type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

struct Slot<C: Clock> {
    receiver_type: &'static str,
    rate: Option<Rate>,
    limiter: Option<Limiter<C>>,
    sender: Box<dyn Sender>,
    max_elapsed: Duration,
}

/// One receiver taken apart for its delivery thread ([`worker`]): its sender, its rate
/// limit and how long its retries may last.
pub struct Lane {
    pub name: Arc<str>,
    pub receiver_type: &'static str,
    /// Asked once per escalation before its first attempt: `false` = over the rate.
    pub admit: Box<dyn FnMut() -> bool + Send>,
    pub sender: Box<dyn Sender>,
    /// Retries of one escalation stop this long after its first attempt (`retry.max_elapsed`).
    pub max_elapsed: Duration,
}

/// Every configured receiver, ready to send. The clock drives the rate limits:
/// [`DefaultClock`] in the agent, [`FakeRelativeClock`] in tests (which never sleep).
pub struct Receivers<C: Clock = DefaultClock> {
    clock: C,
    slots: BTreeMap<Arc<str>, Slot<C>>,
}

impl<C: Clock + Clone> Receivers<C> {
    /// Opens every receiver of the validated config (a `file` receiver's directory is
    /// created; a `file` receiver that cannot be opened yet is tried again at each attempt);
    /// the first receiver that cannot be built is the error.
    pub fn new(cfg: &BTreeMap<String, Receiver>, clock: C) -> Result<Receivers<C>, NotifyError> {
        let mut receivers = Receivers::empty(clock);
        for (name, r) in cfg {
            let name: Arc<str> = Arc::from(name.as_str());
            let sender: Box<dyn Sender> = match &r.kind {
                ReceiverKind::Console => Box::new(console::Console::stdout(name.clone())),
                ReceiverKind::File { path } => Box::new(file::LazyFile::new(name.clone(), path)),
                ReceiverKind::Email(cfg) => Box::new(email::Email::new(name.clone(), cfg)?),
                ReceiverKind::Alertmanager(am) => {
                    Box::new(alertmanager::Alertmanager::new(name.clone(), am))
                }
                ReceiverKind::Nats(n) => Box::new(nats::Nats::new(name.clone(), n)),
                web => match sender(name.clone(), web) {
                    Some(s) => s,
                    None => continue,
                },
            };
            receivers.insert(name.clone(), r.kind.type_name(), r.rate, sender);
            if let Some(slot) = receivers.slots.get_mut(&name) {
                slot.max_elapsed = r.retry.max_elapsed;
            }
        }
        Ok(receivers)
    }

    /// No receivers yet.
    pub fn empty(clock: C) -> Receivers<C> {
        Receivers {
            clock,
            slots: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) the receiver `name` of type `receiver_type`. `rate`: the configured
    /// one; without it, [`default_rate`] of the type applies.
    pub fn insert(
        &mut self,
        name: Arc<str>,
        receiver_type: &'static str,
        rate: Option<Rate>,
        sender: Box<dyn Sender>,
    ) {
        let rate = rate.or_else(|| default_rate(receiver_type));
        let limiter = rate.map(|r| RateLimiter::direct_with_clock(quota(r), self.clock.clone()));
        self.slots.insert(
            name,
            Slot {
                receiver_type,
                rate,
                limiter,
                sender,
                max_elapsed: crate::config::Retry::default().max_elapsed,
            },
        );
    }

    /// Makes one attempt to deliver an escalation to its receiver (`esc.receiver`), with no
    /// outbox and no retry (the agent delivers through [`worker::Delivery`]). Over the
    /// receiver's rate it is not sent and comes back as [`Refused::RateLimited`], for the
    /// caller to fold into the group's next escalation ([`crate::window::Windows::fold`]).
    pub fn send(&mut self, esc: &Escalation) -> Result<Sent, Refused> {
        let Some(slot) = self.slots.get_mut(&*esc.receiver) else {
            return Err(Refused::Failed(NotifyError::Unknown(esc.receiver.clone())));
        };
        if let Some(limiter) = &slot.limiter {
            if limiter.check().is_err() {
                return Err(Refused::RateLimited);
            }
        }
        match slot.sender.send(esc, "") {
            Outcome::Accepted { .. } => Ok(Sent {
                receiver_type: slot.receiver_type,
            }),
            Outcome::Retry { reason, .. } | Outcome::Rejected { reason } => {
                let named = format!("receiver `{}`", esc.receiver);
                let reason = match reason.starts_with(&named) {
                    true => reason,
                    false => format!("{named}: {reason}"),
                };
                Err(Refused::Failed(NotifyError::Attempt {
                    receiver: esc.receiver.clone(),
                    reason,
                }))
            }
        }
    }

    /// The sender of receiver `name`, taken out (for `logward notify test`).
    pub fn take_sender(&mut self, name: &str) -> Option<Box<dyn Sender>> {
        self.slots.remove(name).map(|s| s.sender)
    }

    /// Every receiver as a [`Lane`] for its own delivery thread.
    pub fn into_lanes(self) -> Vec<Lane>
    where
        C: Send + Sync + 'static,
        C::Instant: Send + Sync,
    {
        self.slots
            .into_iter()
            .map(|(name, slot)| {
                let limiter = slot.limiter;
                Lane {
                    name,
                    receiver_type: slot.receiver_type,
                    admit: Box::new(move || limiter.as_ref().is_none_or(|l| l.check().is_ok())),
                    sender: slot.sender,
                    max_elapsed: slot.max_elapsed,
                }
            })
            .collect()
    }

    /// The rate in force for receiver `name` (configured or default); `None` when unlimited
    /// or unknown.
    pub fn rate(&self, name: &str) -> Option<Rate> {
        self.slots.get(name).and_then(|s| s.rate)
    }

    /// Receiver names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(|k| &**k)
    }
}

/// The [`Sender`] of a web receiver type (`slack`, `feishu`, `dingtalk`, `wecom`,
/// `webhook`); `None` for the others.
pub fn sender(name: Arc<str>, kind: &ReceiverKind) -> Option<Box<dyn Sender>> {
    let http = |ca_file: &Option<crate::config::CaFile>| {
        post::Poster::new(name.clone()).with_ca_file(ca_file.as_ref())
    };
    Some(match kind {
        ReceiverKind::Slack {
            url,
            mention,
            explore_url,
            template,
            ca_file,
        } => Box::new(
            slack::Slack::new(
                name.clone(),
                url.clone(),
                mention.clone(),
                explore_url.clone(),
            )
            .with_template(template.clone())
            .with_http(http(ca_file)),
        ),
        ReceiverKind::Feishu {
            url,
            secret,
            mention,
            explore_url,
            template,
            ca_file,
        } => Box::new(
            feishu::Feishu::new(
                name.clone(),
                url.clone(),
                secret.clone(),
                mention.clone(),
                explore_url.clone(),
            )
            .with_template(template.clone())
            .with_http(http(ca_file)),
        ),
        ReceiverKind::DingTalk {
            url,
            secret,
            mention,
            explore_url,
            template,
            ca_file,
        } => Box::new(
            dingtalk::DingTalk::new(
                name.clone(),
                url.clone(),
                secret.clone(),
                mention.clone(),
                explore_url.clone(),
            )
            .with_template(template.clone())
            .with_http(http(ca_file)),
        ),
        ReceiverKind::WeCom {
            url,
            mention,
            explore_url,
            template,
            ca_file,
        } => Box::new(
            wecom::WeCom::new(
                name.clone(),
                url.clone(),
                mention.clone(),
                explore_url.clone(),
            )
            .with_template(template.clone())
            .with_http(http(ca_file)),
        ),
        ReceiverKind::Webhook {
            url,
            secret,
            headers,
            ca_file,
        } => Box::new(
            webhook::Webhook::new(name.clone(), url.clone(), secret.clone(), headers.clone())
                .with_http(http(ca_file)),
        ),
        ReceiverKind::Console
        | ReceiverKind::File { .. }
        | ReceiverKind::Email(_)
        | ReceiverKind::Alertmanager(_)
        | ReceiverKind::Nats(_) => return None,
    })
}

impl Sender for Box<dyn Sender> {
    fn send(&mut self, esc: &Escalation, key: &str) -> Outcome {
        (**self).send(esc, key)
    }
}

/// The rate a receiver type gets when its `[receiver.NAME]` has no `rate`. `console` and
/// `file` are unlimited: they cost nothing and refuse nothing. The chat providers' own limits
/// are in `shared/WIRE.md`; their defaults stay under them even in the worst case.
///
/// A rate N/P is a bucket of N that refills one every P/N ([`quota`]): N may go at once, then
/// one every P/N. Any span of P can therefore see up to 2N − 1 (a full bucket, then the
/// refills), so a provider that counts "L per P" gets N ≤ (L + 1) / 2:
///
/// | type | provider's limit (WIRE.md) | default | worst case |
/// |---|---|---|---|
/// | `slack` | about 1/s per webhook, short bursts allowed; 429 past it | `1/s` | 1 in any second |
/// | `feishu` | 100/min **and** 5/s per bot; code 11232 past it | `3/2s` | 4 in any second, 92 in any minute |
/// | `dingtalk` | 20/min per robot; past it the robot is blocked for 10 minutes | `10/min` | 19 in any minute |
/// | `wecom` | 20/min per robot; errcode 45009 past it | `10/min` | 19 in any minute |
/// | `webhook`, `email`, `alertmanager`, `console`, `file` | none | unlimited | |
/// | `nats` | none: each publish waits for the stream's ack, which paces it | unlimited | |
///
/// `default_rates_stay_under_the_providers_limits` checks the worst cases.
pub fn default_rate(receiver_type: &str) -> Option<Rate> {
    let rate = |count: u32, per: Duration| NonZeroU32::new(count).map(|count| Rate { count, per });
    match receiver_type {
        "slack" => rate(1, Duration::from_secs(1)),
        "feishu" => rate(3, Duration::from_secs(2)),
        "dingtalk" | "wecom" => rate(10, Duration::from_secs(60)),
        _ => None,
    }
}

/// The GCRA quota of a rate N/P: one cell every P/N (rounded up, so never faster than
/// asked), bursts of N.
pub fn quota(rate: Rate) -> Quota {
    let per = rate.per.as_nanos();
    let period = per.div_ceil(u128::from(rate.count.get())).max(1);
    let period = Duration::from_nanos(u64::try_from(period).unwrap_or(u64::MAX));
    // `with_period` refuses only a zero period, which `max(1)` rules out.
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(rate.count))
        .allow_burst(rate.count)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::units;
    use crate::escalation::Kind;
    use crate::event::{Event, Fingerprint, Level, Timestamp};
    use crate::route::tests::event;
    use crate::route::{Matcher, Route};
    use crate::window::Windows;
    use serde_json::Value;
    use std::io::Write;
    use std::sync::Mutex;

    pub(crate) use crate::escalation::tests::escalation_of as escalation;

    /// A writer the test keeps a handle on.
    #[derive(Clone, Default)]
    pub(crate) struct Shared(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn rate(text: &str) -> Option<Rate> {
        Some(units::rate(text).unwrap())
    }

    /// `chat` as a console writing to a buffer, with `rate`.
    fn console_receivers(
        rate: Option<Rate>,
    ) -> (Receivers<FakeRelativeClock>, FakeRelativeClock, Shared) {
        let clock = FakeRelativeClock::default();
        let out = Shared::default();
        let mut r = Receivers::empty(clock.clone());
        let console = console::Console::new("chat".into(), out.clone());
        r.insert("chat".into(), "console", rate, Box::new(console));
        (r, clock, out)
    }

    fn blocks(text: &str) -> usize {
        text.lines().filter(|l| l.starts_with("== ")).count()
    }

    #[test]
    fn three_per_minute_lets_three_pass_then_refuses_until_the_bucket_refills() {
        let (mut r, clock, out) = console_receivers(rate("3/min"));
        let esc = escalation("ERROR db timeout after 30s");
        for _ in 0..3 {
            assert_eq!(r.send(&esc).unwrap().receiver_type, "console");
        }
        assert!(matches!(r.send(&esc), Err(Refused::RateLimited)));
        assert_eq!(
            blocks(&out.text()),
            3,
            "a refused escalation prints nothing"
        );
        clock.advance(Duration::from_secs(19));
        assert!(matches!(r.send(&esc), Err(Refused::RateLimited)));
        clock.advance(Duration::from_secs(1));
        assert!(r.send(&esc).is_ok(), "one refilled after 60s / 3 = 20s");
        assert!(matches!(r.send(&esc), Err(Refused::RateLimited)));
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            assert!(r.send(&esc).is_ok());
        }
        assert!(matches!(r.send(&esc), Err(Refused::RateLimited)));
        assert_eq!(blocks(&out.text()), 7);
    }

    #[test]
    fn console_and_file_are_unlimited_by_default() {
        let (mut r, _clock, out) = console_receivers(None);
        assert_eq!(r.rate("chat"), None);
        let esc = escalation("ERROR db timeout");
        for _ in 0..1000 {
            assert!(r.send(&esc).is_ok());
        }
        assert_eq!(blocks(&out.text()), 1000);
        assert_eq!(default_rate("file"), None);
        assert_eq!(default_rate("console"), None);
    }

    #[test]
    fn an_unknown_receiver_is_a_failure_not_a_rate_limit() {
        let (mut r, _clock, _out) = console_receivers(None);
        let mut esc = escalation("ERROR x");
        esc.receiver = "pager".into();
        let Err(Refused::Failed(e)) = r.send(&esc) else {
            panic!("sent to a receiver that does not exist")
        };
        assert!(e.to_string().contains("no receiver `pager`"), "{e}");
    }

    #[test]
    fn receivers_open_from_the_config_with_their_rates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/er/escalations.ndjson");
        let cfg = BTreeMap::from([
            (
                "chat".to_string(),
                Receiver {
                    kind: ReceiverKind::File { path: path.clone() },
                    rate: rate("2/min"),
                    retry: Default::default(),
                },
            ),
            (
                "out".to_string(),
                Receiver {
                    kind: ReceiverKind::Console,
                    rate: None,
                    retry: Default::default(),
                },
            ),
        ]);
        let mut r = Receivers::new(&cfg, FakeRelativeClock::default()).unwrap();
        assert_eq!(r.names().collect::<Vec<_>>(), ["chat", "out"]);
        assert_eq!(r.rate("chat"), rate("2/min"));
        assert_eq!(r.rate("out"), None);
        let esc = escalation("ERROR db timeout");
        assert_eq!(r.send(&esc).unwrap().receiver_type, "file");
        assert!(r.send(&esc).is_ok());
        assert!(matches!(r.send(&esc), Err(Refused::RateLimited)));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn a_file_receiver_that_cannot_be_opened_yet_retries_and_names_itself_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"").unwrap();
        let path = blocker.join("escalations.ndjson");
        let cfg = BTreeMap::from([(
            "audit".to_string(),
            Receiver {
                kind: ReceiverKind::File { path: path.clone() },
                rate: None,
                retry: Default::default(),
            },
        )]);
        let mut r = Receivers::new(&cfg, FakeRelativeClock::default()).unwrap();
        let mut esc = escalation("ERROR x");
        esc.receiver = "audit".into();
        let Err(Refused::Failed(e)) = r.send(&esc) else {
            panic!("wrote a file under a regular file")
        };
        let text = e.to_string();
        assert!(
            text.starts_with("receiver `audit`: cannot open ")
                && text.contains(&*blocker.to_string_lossy()),
            "{text}"
        );
        std::fs::remove_file(&blocker).unwrap();
        assert!(r.send(&esc).is_ok(), "opened once it can be");
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }

    /// The most a greedy sender gets through `rate` in any span of `window` (checks every
    /// 10 ms for `horizon`).
    fn worst_case(rate: Rate, window: Duration, horizon: Duration) -> usize {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota(rate), clock.clone());
        let step = Duration::from_millis(10);
        let mut passed = Vec::new();
        let mut t = Duration::ZERO;
        while t < horizon {
            while limiter.check().is_ok() {
                passed.push(t);
            }
            clock.advance(step);
            t += step;
        }
        (0..passed.len())
            .map(|i| {
                passed[i..]
                    .iter()
                    .take_while(|&&u| u < passed[i] + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn default_rates_stay_under_the_providers_limits() {
        let sec = Duration::from_secs(1);
        let min = Duration::from_secs(60);
        // type, the provider's limit per span, and the most the default lets through in one
        let limits = [
            ("slack", 1, sec, 1),
            ("feishu", 5, sec, 4),
            ("feishu", 100, min, 92),
            ("dingtalk", 20, min, 19),
            ("wecom", 20, min, 19),
        ];
        for (kind, limit, window, documented) in limits {
            let Some(rate) = default_rate(kind) else {
                panic!("{kind} has no default rate")
            };
            let most = worst_case(rate, window, window * 4);
            assert!(
                most <= limit,
                "{kind}: {rate} lets {most} through in {window:?}, over the provider's {limit}"
            );
            assert_eq!(most, documented, "{kind}: update default_rate's table");
        }
        for kind in [
            "webhook",
            "email",
            "alertmanager",
            "console",
            "file",
            "nats",
        ] {
            assert_eq!(default_rate(kind), None, "{kind}");
        }
    }

    #[test]
    fn a_quota_is_never_faster_than_its_rate() {
        let q = quota(units::rate("7/min").unwrap());
        assert_eq!(q.burst_size().get(), 7);
        assert!(q.replenish_interval() * 7 >= Duration::from_secs(60));
        let q = quota(units::rate("3/1ns").unwrap());
        assert_eq!(q.replenish_interval(), Duration::from_nanos(1));
    }

    fn error(fp: u64) -> Event {
        let mut ev = event(&format!("ERROR db timeout after 30s id={fp}"));
        ev.level = Some(Level::Error);
        ev.service = Some("api".into());
        ev.message = Some(format!("db timeout after 30s id={fp}"));
        ev.fingerprint = Some(Fingerprint(fp));
        ev
    }

    /// Counts what each receiver was told about, in events: a first or repeat stands for its
    /// trigger, every escalation for its `suppressed`.
    fn told(lines: &str) -> u64 {
        lines
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["suppressed"].as_u64().unwrap() + u64::from(v["kind"] != "summary")
            })
            .sum()
    }

    /// The end-to-end half of `rate_limit_folds_into_summary_without_loss` (window.rs): real
    /// windows and real receivers on one fake time line. `chat` (3/min) refuses the 4th and
    /// 5th firsts of a burst; they are folded, and reach `chat` in their groups' summaries at
    /// the end of the window, counted as suppressed `rate_limited`. `audit` (unlimited) gets
    /// all five firsts at once.
    #[test]
    fn rate_limited_escalations_fold_into_the_next_summary() {
        let dir = tempfile::tempdir().unwrap();
        let chat_path = dir.path().join("chat.ndjson");
        let audit_path = dir.path().join("audit.ndjson");
        let cfg = BTreeMap::from([
            (
                "chat".to_string(),
                Receiver {
                    kind: ReceiverKind::File {
                        path: chat_path.clone(),
                    },
                    rate: rate("3/min"),
                    retry: Default::default(),
                },
            ),
            (
                "audit".to_string(),
                Receiver {
                    kind: ReceiverKind::File {
                        path: audit_path.clone(),
                    },
                    rate: None,
                    retry: Default::default(),
                },
            ),
        ]);
        let clock = FakeRelativeClock::default();
        let mut receivers = Receivers::new(&cfg, clock.clone()).unwrap();
        let route = Route::new(
            "errors",
            Matcher::default(),
            vec!["chat".into(), "audit".into()],
        );
        let window = route.window;
        let mut windows = Windows::new(vec![route].into());
        let metrics = crate::metrics::Metrics::new();
        let notify_metrics = metrics.notify();
        let start = Timestamp::from_nanos(1_700_000_000_000_000_000);
        let at =
            |elapsed: Duration| Timestamp::from_nanos(start.as_nanos() + elapsed.as_nanos() as i64);

        // The driver: send what the windows emit; fold what a rate refuses.
        let deliver = |receivers: &mut Receivers<FakeRelativeClock>,
                       windows: &mut Windows,
                       mut pending: Vec<Escalation>,
                       now: Timestamp| {
            let mut refused = 0;
            while let Some(esc) = pending.pop() {
                let outcome = receivers.send(&esc);
                notify_metrics.record(&esc, &outcome);
                match outcome {
                    Ok(_) => {}
                    Err(Refused::RateLimited) => {
                        refused += 1;
                        assert!(windows.fold(&esc, now, &mut pending));
                    }
                    Err(Refused::Failed(e)) => panic!("{e}"),
                }
            }
            notify_metrics.suppressed(&windows.take_counters());
            refused
        };

        // Five distinct errors, one a second: five groups, a first each, to both receivers.
        let mut refused = 0;
        let mut elapsed = Duration::ZERO;
        for fp in 1..=5u64 {
            let mut out = Vec::new();
            windows.observe(0, &error(fp), &[], at(elapsed), None, &mut out);
            assert_eq!(out.len(), 2);
            refused += deliver(&mut receivers, &mut windows, out, at(elapsed));
            clock.advance(Duration::from_secs(1));
            elapsed += Duration::from_secs(1);
        }
        assert_eq!(refused, 2, "chat takes three firsts at once, refuses two");
        let chat = std::fs::read_to_string(&chat_path).unwrap();
        assert_eq!(chat.lines().count(), 3);
        assert_eq!(told(&std::fs::read_to_string(&audit_path).unwrap()), 5);

        // The refused groups' windows end (they opened at 3 s and 4 s): their firsts come
        // back as summaries, to chat alone.
        clock.advance(window - Duration::from_secs(1));
        elapsed += window - Duration::from_secs(1);
        let mut out = Vec::new();
        windows.tick(at(elapsed), &mut out);
        assert_eq!(out.len(), 2, "{out:#?}");
        for esc in &out {
            assert_eq!(
                (&*esc.receiver, esc.kind, esc.count, esc.suppressed),
                ("chat", Kind::Summary, 1, 1)
            );
        }
        let refused_at_end = deliver(&mut receivers, &mut windows, out, at(elapsed));
        assert_eq!(refused_at_end, 0, "the bucket refilled during the window");

        let chat = std::fs::read_to_string(&chat_path).unwrap();
        let kinds: Vec<String> = chat
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(kinds, ["first", "first", "first", "summary", "summary"]);
        assert_eq!(told(&chat), 5, "nothing lost for chat");
        assert_eq!(told(&std::fs::read_to_string(&audit_path).unwrap()), 5);

        let text = metrics.encode();
        for line in [
            "logward_suppressed_total{route=\"errors\",reason=\"rate_limited\"} 2",
            "logward_escalations_total{route=\"errors\",receiver=\"chat\",kind=\"first\"} 3",
            "logward_escalations_total{route=\"errors\",receiver=\"chat\",kind=\"summary\"} 2",
            "logward_escalations_total{route=\"errors\",receiver=\"audit\",kind=\"first\"} 5",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
