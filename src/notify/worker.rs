//! Delivery: one thread per receiver, each with its own queue, so that one slow or failing
//! receiver never delays another.
//!
//! Owns: putting each escalation into the [`Outbox`] before its receiver sees it, the
//! per-receiver queues (bounded by [`OUTBOX_CAP`]), the rate-limit check before an
//! escalation's first attempt, retries with exponential backoff and full jitter, removing
//! what is done from the outbox, and the delivery metrics. Must not: decide what to
//! escalate, fold (the `refused` callback hands rate-limited escalations back to the
//! windows), or know a provider's wire format (that is each [`super::Sender`]).
//!
//! A receiver's escalations go out in order, one at a time: an escalation being retried
//! holds back the ones behind it (for that receiver only).
//!
//! Shutdown ([`Delivery::stop`]): each worker finishes its current attempt; it goes on with
//! what is queued while attempts succeed, for at most [`DRAIN_LIMIT`], and stops at the first
//! one that would have to wait for a retry. What is unsent stays in the outbox and is sent at
//! the next start.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::outbox::{Item, Outbox};
use super::recent::{DeliveryState, RecentEscalations};
use super::{Lane, Outcome};
use crate::escalation::Escalation;
use crate::event::Timestamp;
use crate::metrics::NotifyMetrics;

/// The most escalations one receiver's outbox holds. Past it, the oldest waiting one is
/// dropped (removed from the outbox), logged as an error and counted in
/// `logward_receiver_errors_total{reason="outbox_full"}`: a receiver down for long loses
/// its oldest news, not the newest, and the agent's disk and memory stay bounded.
pub const OUTBOX_CAP: usize = 10_000;
/// The first retry waits up to this (full jitter: a uniform draw in `[0, BASE·2ⁿ]`).
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// No wait between two attempts draws above this (a Retry-After may ask for more).
pub const RETRY_CAP: Duration = Duration::from_secs(300);
/// At shutdown, how long workers go on sending what is queued.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How a receiver's failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// Retries stop this long after the first attempt: the escalation is given up.
    pub max_elapsed: Duration,
}

impl RetryPolicy {
    pub fn new(max_elapsed: Duration) -> RetryPolicy {
        RetryPolicy {
            base: RETRY_BASE,
            cap: RETRY_CAP,
            max_elapsed,
        }
    }

    /// The wait before retry number `retry` (0 for the first), "full jitter": `unit` (a
    /// uniform draw in `[0, 1)`) times `min(cap, base·2^retry)`, and never less than what
    /// the receiver asked for (`after`, its Retry-After).
    pub fn backoff(&self, retry: u32, after: Option<Duration>, unit: f64) -> Duration {
        let ceiling = self
            .base
            .checked_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.cap)
            .min(self.cap);
        let drawn = ceiling.mul_f64(unit.clamp(0.0, 1.0));
        drawn.max(after.unwrap_or_default())
    }
}

/// A small xorshift generator for jitter: no cryptographic quality needed.
pub struct Jitter(u64);

impl Jitter {
    pub fn seeded(name: &str) -> Jitter {
        let now = Timestamp::now().as_nanos().to_le_bytes();
        let seed = xxhash_rust::xxh3::xxh3_64(&[name.as_bytes(), &now].concat());
        Jitter(seed | 1)
    }

    /// A uniform draw in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Where a rate-limited escalation goes: back to the windows, to be folded into its group's
/// next escalation (`WindowsHandle::fold`).
pub type Refused = Arc<dyn Fn(&Escalation) + Send + Sync>;

/// A queued escalation: on disk, or in memory when the outbox could not be written.
struct Entry {
    key: Arc<str>,
    memory: Option<Box<Escalation>>,
}

#[derive(Default)]
struct QueueState {
    entries: BTreeMap<u64, Entry>,
    /// The entry being attempted: not dropped by the cap.
    inflight: Option<u64>,
    /// Set by [`Delivery::stop`]: drain until then.
    stop_at: Option<Instant>,
}

#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What every worker shares.
struct Common {
    outbox: Arc<Outbox>,
    metrics: NotifyMetrics,
    refused: Refused,
    cap: usize,
    recent: Arc<RecentEscalations>,
}

/// The running delivery threads, one per receiver.
pub struct Delivery {
    common: Arc<Common>,
    queues: BTreeMap<Arc<str>, Arc<Queue>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Delivery {
    /// Starts a worker for each lane, with the items a previous run `left` in the outbox
    /// queued first. Items for a receiver that is no longer configured stay on disk.
    pub fn start(
        outbox: Arc<Outbox>,
        left: Vec<Item>,
        lanes: Vec<Lane>,
        metrics: NotifyMetrics,
        refused: Refused,
    ) -> std::io::Result<Delivery> {
        Delivery::with_limits(
            outbox, left, lanes, metrics, refused, OUTBOX_CAP, RETRY_BASE,
        )
    }

    /// [`Delivery::start`] with `cap` items per receiver and retries from `retry_base`.
    pub fn with_limits(
        outbox: Arc<Outbox>,
        left: Vec<Item>,
        lanes: Vec<Lane>,
        metrics: NotifyMetrics,
        refused: Refused,
        cap: usize,
        retry_base: Duration,
    ) -> std::io::Result<Delivery> {
        let common = Arc::new(Common {
            outbox,
            metrics,
            refused,
            cap: cap.max(1),
            recent: Arc::default(),
        });
        let mut delivery = Delivery {
            common: common.clone(),
            queues: BTreeMap::new(),
            threads: Mutex::new(Vec::new()),
        };
        for lane in lanes {
            let queue = Arc::new(Queue::default());
            delivery.queues.insert(lane.name.clone(), queue.clone());
            let policy = RetryPolicy {
                base: retry_base,
                ..RetryPolicy::new(lane.max_elapsed)
            };
            let worker = Worker {
                jitter: Jitter::seeded(&lane.name),
                lane,
                policy,
                queue,
                common: common.clone(),
            };
            let thread = thread::Builder::new()
                .name(format!("receiver:{}", worker.lane.name))
                .spawn(move || worker.run())?;
            delivery
                .threads
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .push(thread);
        }
        let mut orphans = BTreeMap::<Arc<str>, usize>::new();
        for item in left {
            match delivery.queues.get(&item.receiver) {
                Some(q) => delivery.enqueue(q, &item.receiver, item.seq, item.key, None),
                None => *orphans.entry(item.receiver).or_default() += 1,
            }
        }
        for (receiver, n) in orphans {
            tracing::warn!(receiver = %receiver, items = n, dir = %delivery.common.outbox.dir().display(),
                "the outbox holds escalations for a receiver that is not configured; they are kept, not sent");
        }
        Ok(delivery)
    }

    /// Puts `esc` into the outbox (on disk, fsync'd) and queues it for its receiver's worker.
    /// Never waits for a receiver.
    pub fn submit(&self, esc: &Escalation) {
        self.submit_all(std::slice::from_ref(esc));
    }

    /// [`Delivery::submit`] for a burst, written to the outbox as one group commit.
    pub fn submit_all(&self, escs: &[Escalation]) {
        let known: Vec<Escalation> = escs
            .iter()
            .filter(|esc| {
                let known = self.queues.contains_key(&*esc.receiver);
                if !known {
                    tracing::error!(receiver = %esc.receiver, route = %esc.route, "no such receiver; the escalation is dropped");
                    self.common.metrics.receiver_error(&esc.receiver, "unknown");
                }
                known
            })
            .cloned()
            .collect();
        let written = self.common.outbox.put_all(&known, Timestamp::now());
        for (esc, (item, written)) in known.into_iter().zip(written) {
            let Some(queue) = self.queues.get(&item.receiver) else {
                continue;
            };
            self.common.recent.queued(item.seq, &esc);
            let memory = match written {
                Ok(()) => None,
                Err(e) => {
                    tracing::error!(receiver = %esc.receiver, error = %e, "cannot write the escalation to the outbox; it is kept in memory only (lost if the agent stops before it is delivered)");
                    Some(Box::new(esc))
                }
            };
            self.enqueue(queue, &item.receiver, item.seq, item.key, memory);
        }
    }

    fn enqueue(
        &self,
        queue: &Queue,
        receiver: &str,
        seq: u64,
        key: Arc<str>,
        memory: Option<Box<Escalation>>,
    ) {
        let mut q = queue.lock();
        while q.entries.len() >= self.common.cap {
            let inflight = q.inflight;
            let Some(&oldest) = q.entries.keys().find(|&&s| Some(s) != inflight) else {
                break;
            };
            q.entries.remove(&oldest);
            self.common.recent.update(oldest, DeliveryState::Dropped);
            if let Err(e) = self.common.outbox.remove(oldest) {
                tracing::error!(receiver, error = %e, "cannot remove a dropped escalation from the outbox");
            }
            tracing::error!(
                receiver,
                cap = self.common.cap,
                "the receiver's outbox is full; its oldest waiting escalation is dropped"
            );
            self.common.metrics.receiver_error(receiver, "outbox_full");
        }
        q.entries.insert(seq, Entry { key, memory });
        self.common.metrics.outbox_items(receiver, q.entries.len());
        drop(q);
        queue.wake.notify_all();
    }

    /// The recent escalations and their delivery state (for the status page).
    pub fn recent(&self) -> Arc<RecentEscalations> {
        self.common.recent.clone()
    }

    /// Escalations waiting for receiver `name` (the one being attempted included).
    pub fn queued(&self, name: &str) -> usize {
        self.queues.get(name).map_or(0, |q| q.lock().entries.len())
    }

    /// Stops every worker after its current attempt (see the module's doc) and waits for them.
    pub fn stop(&self) {
        let until = Instant::now() + DRAIN_LIMIT;
        for q in self.queues.values() {
            q.lock().stop_at = Some(until);
            q.wake.notify_all();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    lane: Lane,
    policy: RetryPolicy,
    queue: Arc<Queue>,
    common: Arc<Common>,
    jitter: Jitter,
}

/// How an escalation's delivery ended.
enum Done {
    /// Remove it from the outbox.
    Finished,
    /// Stopping: it stays in the outbox.
    Stopped,
}

impl Worker {
    fn run(mut self) {
        while let Some((seq, key, memory)) = self.next() {
            let esc = match memory {
                Some(esc) => *esc,
                None => match self.common.outbox.read(seq) {
                    Ok(esc) => esc,
                    Err(e) => {
                        tracing::error!(receiver = %self.lane.name, error = %e, "an outbox item cannot be read; it is dropped");
                        self.common
                            .metrics
                            .receiver_error(&self.lane.name, "unreadable");
                        self.finish(seq);
                        continue;
                    }
                },
            };
            self.common.recent.queued(seq, &esc);
            match self.deliver(seq, &esc, &key) {
                Done::Finished => self.finish(seq),
                Done::Stopped => return,
            }
        }
    }

    /// The next escalation to attempt; `None` when stopping and there is nothing left
    /// to drain (or the drain time is up).
    fn next(&self) -> Option<(u64, Arc<str>, Option<Box<Escalation>>)> {
        let mut q = self.queue.lock();
        loop {
            if q.stop_at.is_some_and(|t| Instant::now() >= t) {
                return None;
            }
            if let Some((&seq, entry)) = q.entries.first_key_value() {
                let next = (seq, entry.key.clone(), entry.memory.clone());
                q.inflight = Some(seq);
                return Some(next);
            }
            if q.stop_at.is_some() {
                return None;
            }
            q = self.queue.wake.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn finish(&self, seq: u64) {
        if let Err(e) = self.common.outbox.remove(seq) {
            tracing::error!(receiver = %self.lane.name, error = %e, "cannot remove a delivered escalation from the outbox; it may be sent again after a restart");
        }
        let mut q = self.queue.lock();
        q.entries.remove(&seq);
        q.inflight = None;
        self.common
            .metrics
            .outbox_items(&self.lane.name, q.entries.len());
    }

    /// Attempts `esc` until it is accepted, rejected, given up, or the worker is stopping.
    fn deliver(&mut self, seq: u64, esc: &Escalation, key: &str) -> Done {
        let name = self.lane.name.clone();
        let recent = self.common.recent.clone();
        if !(self.lane.admit)() {
            (self.common.refused)(esc);
            recent.update(seq, DeliveryState::RateLimited);
            return Done::Finished;
        }
        let first = Instant::now();
        let mut retry = 0;
        loop {
            let reason = match self.lane.sender.send(esc, key) {
                Outcome::Accepted { answer } => {
                    tracing::debug!(receiver = %name, route = %esc.route, key, answer, "escalation delivered");
                    self.common.metrics.accepted(esc);
                    recent.update(
                        seq,
                        DeliveryState::Sent {
                            attempts: retry + 1,
                        },
                    );
                    return Done::Finished;
                }
                Outcome::Rejected { reason } => {
                    tracing::error!(receiver = %name, route = %esc.route, key, reason, "the receiver rejected the escalation; it is not retried");
                    self.common.metrics.receiver_error(&name, "rejected");
                    recent.update(
                        seq,
                        DeliveryState::Rejected {
                            attempts: retry + 1,
                            last_error: crate::status::cut(&reason),
                        },
                    );
                    return Done::Finished;
                }
                Outcome::Retry { after, reason } => {
                    let wait = self.policy.backoff(retry, after, self.jitter.unit());
                    if first.elapsed() + wait > self.policy.max_elapsed {
                        tracing::error!(receiver = %name, route = %esc.route, key, reason, attempts = retry + 1,
                            "giving up on the escalation: still failing after retry.max_elapsed");
                        self.common.metrics.receiver_error(&name, "expired");
                        recent.update(
                            seq,
                            DeliveryState::Expired {
                                attempts: retry + 1,
                                last_error: crate::status::cut(&reason),
                            },
                        );
                        return Done::Finished;
                    }
                    tracing::warn!(receiver = %name, route = %esc.route, key, reason, retry_in = ?wait, attempt = retry + 1, "delivery failed; will retry");
                    self.common.metrics.retry(&name);
                    recent.retrying(seq, retry + 1, &reason, wait);
                    (reason, wait)
                }
            };
            if self.sleep(reason.1) {
                return Done::Stopped;
            }
            retry += 1;
        }
    }

    /// Waits `wait`; `true` when told to stop meanwhile (or already stopping).
    fn sleep(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        let mut q = self.queue.lock();
        loop {
            if q.stop_at.is_some() {
                q.inflight = None;
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            q = self
                .queue
                .wake
                .wait_timeout(q, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::notify::Sender;
    use crate::notify::tests::escalation;
    use std::sync::mpsc;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_full_jitter_and_honours_retry_after() {
        let p = RetryPolicy::new(Duration::from_secs(86_400));
        let s = Duration::from_secs;
        // The ceiling of each retry: 1, 2, 4, ... 256, then the 5 min cap.
        for (retry, ceiling) in [(0, 1), (1, 2), (2, 4), (8, 256), (9, 300), (40, 300)] {
            assert_eq!(
                p.backoff(retry, None, 0.999_999_999),
                s(ceiling).mul_f64(0.999_999_999)
            );
            assert_eq!(
                p.backoff(retry, None, 0.0),
                Duration::ZERO,
                "full jitter starts at 0"
            );
            assert_eq!(p.backoff(retry, None, 0.5), s(ceiling) / 2);
        }
        // Retry-After is the least wait, even above the cap.
        assert_eq!(p.backoff(0, Some(s(30)), 0.5), s(30));
        assert_eq!(p.backoff(20, Some(s(600)), 0.9), s(600));
        assert_eq!(p.backoff(20, Some(s(1)), 0.5), s(150));
        // Draws from the generator stay in [0, 1) and spread out.
        let mut j = Jitter::seeded("chat");
        let draws: Vec<f64> = (0..1000).map(|_| j.unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.iter().any(|u| *u < 0.1) && draws.iter().any(|u| *u > 0.9));
    }

    /// A sender scripted by the test: each attempt takes the next outcome from a channel
    /// and reports what it was given.
    struct Scripted {
        outcomes: mpsc::Receiver<Outcome>,
        seen: mpsc::Sender<(String, String)>,
    }

    impl Sender for Scripted {
        fn send(&mut self, esc: &Escalation, key: &str) -> Outcome {
            let _ = self.seen.send((esc.sample.line.clone(), key.to_string()));
            // Never blocks past WAIT: a test that forgot an outcome fails instead of hanging.
            self.outcomes.recv_timeout(WAIT).unwrap_or(Outcome::Retry {
                after: None,
                reason: "script ended".into(),
            })
        }
    }

    fn lane(
        name: &str,
        max_elapsed: Duration,
    ) -> (
        Lane,
        mpsc::Sender<Outcome>,
        mpsc::Receiver<(String, String)>,
    ) {
        let (tx, outcomes) = mpsc::channel();
        let (seen, rx) = mpsc::channel();
        let lane = Lane {
            name: name.into(),
            receiver_type: "test",
            admit: Box::new(|| true),
            sender: Box::new(Scripted { outcomes, seen }),
            max_elapsed,
        };
        (lane, tx, rx)
    }

    fn to(receiver: &str, line: &str) -> Escalation {
        let mut e = escalation(line);
        e.receiver = receiver.into();
        e.sample.line = line.into();
        e
    }

    fn accepted() -> Outcome {
        Outcome::Accepted {
            answer: "ok".into(),
        }
    }

    fn retry() -> Outcome {
        Outcome::Retry {
            after: Some(Duration::from_millis(1)),
            reason: "503".into(),
        }
    }

    const WAIT: Duration = Duration::from_secs(5);

    fn start(
        dir: &std::path::Path,
        lanes: Vec<Lane>,
        metrics: &Metrics,
    ) -> (Delivery, Arc<Outbox>) {
        let (outbox, left) = Outbox::open(dir).unwrap();
        let outbox = Arc::new(outbox);
        let d = Delivery::with_limits(
            outbox.clone(),
            left,
            lanes,
            metrics.notify(),
            Arc::new(|_: &Escalation| {}),
            OUTBOX_CAP,
            Duration::from_millis(1),
        )
        .unwrap();
        (d, outbox)
    }

    fn files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir.join("outbox")).unwrap().count()
    }

    #[test]
    fn a_slow_receiver_does_not_hold_back_another() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        let (slow, slow_tx, slow_seen) = lane("slow", Duration::from_secs(60));
        let (quick, quick_tx, quick_seen) = lane("quick", Duration::from_secs(60));
        let (d, _) = start(dir.path(), vec![slow, quick], &metrics);
        d.submit(&to("slow", "ERROR s"));
        // The slow sender now blocks, waiting for its outcome.
        assert_eq!(slow_seen.recv_timeout(WAIT).unwrap().0, "ERROR s");
        for i in 0..3 {
            quick_tx.send(accepted()).unwrap();
            d.submit(&to("quick", &format!("ERROR q{i}")));
            assert_eq!(
                quick_seen.recv_timeout(WAIT).unwrap().0,
                format!("ERROR q{i}")
            );
        }
        assert_eq!(d.queued("slow"), 1);
        slow_tx.send(accepted()).unwrap();
        d.stop();
        assert_eq!(files(dir.path()), 0);
        let text = metrics.encode();
        assert!(
            text.contains(
                "logward_escalations_total{route=\"errors\",receiver=\"quick\",kind=\"first\"} 3"
            ),
            "{text}"
        );
    }

    #[test]
    fn retries_keep_the_key_and_a_rejection_is_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        let (chat, tx, seen) = lane("chat", Duration::from_secs(60));
        let (d, _) = start(dir.path(), vec![chat], &metrics);
        tx.send(retry()).unwrap();
        tx.send(retry()).unwrap();
        tx.send(accepted()).unwrap();
        tx.send(Outcome::Rejected {
            reason: "keyword missing".into(),
        })
        .unwrap();
        tx.send(accepted()).unwrap();
        d.submit(&to("chat", "ERROR a"));
        d.submit(&to("chat", "ERROR b"));
        d.submit(&to("chat", "ERROR c"));
        let got: Vec<(String, String)> = (0..5).map(|_| seen.recv_timeout(WAIT).unwrap()).collect();
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            lines,
            ["ERROR a", "ERROR a", "ERROR a", "ERROR b", "ERROR c"]
        );
        assert!(
            got[..3].iter().all(|(_, k)| *k == got[0].1),
            "one key for every attempt"
        );
        assert_ne!(got[0].1, got[3].1);
        d.stop();
        assert!(
            seen.try_recv().is_err(),
            "the rejected one was not tried again"
        );
        assert_eq!(files(dir.path()), 0);
        let text = metrics.encode();
        for line in [
            "logward_receiver_retries_total{receiver=\"chat\"} 2",
            "logward_receiver_errors_total{receiver=\"chat\",reason=\"rejected\"} 1",
            "logward_outbox_items{receiver=\"chat\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn unsent_items_survive_a_stop_and_are_delivered_after_the_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        let (chat, tx, seen) = lane("chat", Duration::from_secs(7200));
        let (d, _) = start(dir.path(), vec![chat], &metrics);
        // The receiver is down: a retry whose wait outlasts the test.
        tx.send(Outcome::Retry {
            after: Some(Duration::from_secs(3600)),
            reason: "connection refused".into(),
        })
        .unwrap();
        d.submit(&to("chat", "ERROR a"));
        d.submit(&to("chat", "ERROR b"));
        let (_, key_a) = seen.recv_timeout(WAIT).unwrap();
        // A crash: nothing removed. (`stop` ends the wait without removing anything.)
        d.stop();
        drop(d);
        assert_eq!(files(dir.path()), 2);

        let (chat, tx, seen) = lane("chat", Duration::from_secs(60));
        tx.send(accepted()).unwrap();
        tx.send(accepted()).unwrap();
        let (d, _) = start(dir.path(), vec![chat], &metrics);
        let again: Vec<(String, String)> =
            (0..2).map(|_| seen.recv_timeout(WAIT).unwrap()).collect();
        assert_eq!(
            again[0],
            ("ERROR a".to_string(), key_a),
            "same key after the restart"
        );
        assert_eq!(again[1].0, "ERROR b");
        d.stop();
        assert_eq!(files(dir.path()), 0, "delivered items leave the outbox");
    }

    #[test]
    fn retries_stop_after_max_elapsed() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        let (chat, tx, seen) = lane("chat", Duration::from_millis(20));
        let (d, _) = start(dir.path(), vec![chat], &metrics);
        for _ in 0..3 {
            tx.send(Outcome::Retry {
                after: Some(Duration::from_millis(15)),
                reason: "503".into(),
            })
            .unwrap();
        }
        d.submit(&to("chat", "ERROR a"));
        assert!(seen.recv_timeout(WAIT).is_ok());
        assert!(seen.recv_timeout(WAIT).is_ok());
        let deadline = Instant::now() + WAIT;
        while d.queued("chat") > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(d.queued("chat"), 0, "given up");
        d.stop();
        assert!(
            metrics
                .encode()
                .contains("logward_receiver_errors_total{receiver=\"chat\",reason=\"expired\"} 1")
        );
    }

    #[test]
    fn over_the_cap_the_oldest_waiting_escalation_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        let (chat, tx, seen) = lane("chat", Duration::from_secs(60));
        let (outbox, left) = Outbox::open(dir.path()).unwrap();
        let d = Delivery::with_limits(
            Arc::new(outbox),
            left,
            vec![chat],
            metrics.notify(),
            Arc::new(|_: &Escalation| {}),
            2,
            Duration::from_millis(1),
        )
        .unwrap();
        d.submit(&to("chat", "ERROR a"));
        assert_eq!(seen.recv_timeout(WAIT).unwrap().0, "ERROR a"); // in flight, blocked
        d.submit(&to("chat", "ERROR b"));
        d.submit(&to("chat", "ERROR c"));
        assert_eq!(d.queued("chat"), 2);
        for _ in 0..2 {
            tx.send(accepted()).unwrap();
        }
        assert_eq!(
            seen.recv_timeout(WAIT).unwrap().0,
            "ERROR c",
            "b was dropped"
        );
        d.stop();
        assert!(
            metrics.encode().contains(
                "logward_receiver_errors_total{receiver=\"chat\",reason=\"outbox_full\"} 1"
            )
        );
    }

    #[test]
    fn over_the_rate_the_escalation_is_handed_back_and_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        let (mut chat, _tx, seen) = lane("chat", Duration::from_secs(60));
        chat.admit = Box::new(|| false);
        let (outbox, left) = Outbox::open(dir.path()).unwrap();
        let (folded_tx, folded) = mpsc::channel();
        let folded_tx = Mutex::new(folded_tx);
        let d = Delivery::start(
            Arc::new(outbox),
            left,
            vec![chat],
            metrics.notify(),
            Arc::new(move |e: &Escalation| {
                let _ = folded_tx.lock().unwrap().send(e.sample.line.clone());
            }),
        )
        .unwrap();
        d.submit(&to("chat", "ERROR a"));
        assert_eq!(folded.recv_timeout(WAIT).unwrap(), "ERROR a");
        d.stop();
        assert!(seen.try_recv().is_err());
        assert_eq!(files(dir.path()), 0);
    }
}
