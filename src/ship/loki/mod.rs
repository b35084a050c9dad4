//! The Grafana Loki output (`[loki]`): each event becomes an entry of the stream of its label
//! set, gathered into pushes of at most `batch_size` bytes and `max_streams_per_push`
//! streams, or `batch_wait` old, which `max_in_flight` push workers send and retry.
//!
//! Threads: the delivery thread gathers ([`push::Gathering`]: labels, timestamps, cuts) and
//! hands each sealed push to a free push worker, waiting while none is free. With every
//! worker busy retrying (Loki slow or down), delivery waits, the sources' channel fills and
//! reading pauses: memory holds at most `max_in_flight` pushes plus the one gathering. A
//! push accepts its share of each batch in it when Loki answers 2xx, or when it is dropped
//! on purpose (refused, `max_retries`), counted in `logward_loki_dropped_entries_total`.
//!
//! Must not: accept what Loki has not taken and was not dropped on purpose; put the URL or a
//! credential in a log (the client's messages leave them out).

pub mod client;
pub mod labels;
pub mod push;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use prost::bytes::Bytes;

use super::{Output, Receipt};
use crate::config::{Loki, LokiEncoding};
use crate::event::{Event, Timestamp};
use crate::metrics::LokiMetrics;
use crate::notify::post::LazyClient;
use crate::notify::worker::{Jitter, RetryPolicy};
use crate::route::value_of;
use client::{Answer, Pusher};
use labels::{LabelKey, LabelSet, cut};
use push::{Gathering, MetaNames, ORIGINAL_TIMESTAMP, Push, TRUNCATED};

/// How often a finishing output looks whether a push worker took its last push.
const FINISH_POLL: Duration = Duration::from_millis(10);

/// The time an entry is sent with, and the event's own time when that is not it: the own
/// time when Loki takes it (no older than `max_age`, no further ahead than `max_future`),
/// else the read time, else (read long ago, in an outage) now.
pub fn stamp(
    ts: Timestamp,
    read_at: Timestamp,
    now: Timestamp,
    max_age: Duration,
    max_future: Duration,
) -> (Timestamp, Option<Timestamp>) {
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let oldest = now.as_nanos().saturating_sub(nanos(max_age));
    let newest = now.as_nanos().saturating_add(nanos(max_future));
    let takes = |t: Timestamp| (oldest..=newest).contains(&t.as_nanos());
    if takes(ts) {
        (ts, None)
    } else if takes(read_at) {
        (read_at, Some(ts))
    } else {
        (now, Some(ts))
    }
}

/// What the delivery thread and the push workers share.
struct Shared {
    config: Loki,
    pusher: Pusher,
    names: MetaNames,
    truncated: usize,
    original: usize,
    metrics: LokiMetrics,
    /// Set once Loki refused structured metadata: it goes to the line as logfmt from then on.
    logfmt: AtomicBool,
    /// Set at shutdown: workers give up what they cannot send by then.
    drain: Mutex<Option<Instant>>,
    wake: Condvar,
}

/// The Loki output, on the delivery thread.
pub struct LokiOutput {
    shared: Arc<Shared>,
    key: LabelKey,
    labels: LabelSet,
    gathering: Gathering,
    handoff: Handoff,
}

/// Hands sealed pushes to the workers.
struct Handoff {
    shared: Arc<Shared>,
    tx: Option<SyncSender<Push>>,
    workers: Vec<JoinHandle<()>>,
    next_id: u64,
    stream_cap_warned: bool,
    label_cap_warned: bool,
}

impl LokiOutput {
    /// Starts the push workers.
    pub fn start(config: &Loki, metrics: LokiMetrics) -> std::io::Result<LokiOutput> {
        let names = MetaNames::new(config.structured_metadata.iter().map(|p| p.name.clone()));
        let shared = Arc::new(Shared {
            pusher: Pusher::new(config.clone()),
            truncated: names.index(TRUNCATED),
            original: names.index(ORIGINAL_TIMESTAMP),
            names,
            metrics,
            config: config.clone(),
            logfmt: AtomicBool::new(false),
            drain: Mutex::new(None),
            wake: Condvar::new(),
        });
        // A rendezvous: a push goes only to a worker free to send it.
        let (tx, rx) = mpsc::sync_channel::<Push>(0);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..config.max_in_flight)
            .map(|i| {
                let (shared, rx) = (shared.clone(), rx.clone());
                thread::Builder::new()
                    .name(format!("loki-push-{i}"))
                    .spawn(move || work(&shared, &rx, Jitter::seeded(&format!("loki-{i}"))))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(LokiOutput {
            handoff: Handoff {
                shared: shared.clone(),
                tx: Some(tx),
                workers,
                next_id: 0,
                stream_cap_warned: false,
                label_cap_warned: false,
            },
            shared,
            key: LabelKey::default(),
            labels: LabelSet::new(crate::escalation::hostname()),
            gathering: Gathering::default(),
        })
    }

    /// Adds one event to `stream` of the push being gathered.
    fn add(&mut self, stream: usize, ev: &Event, now: Timestamp) {
        let s = &*self.shared;
        let c = &s.config;
        let line = cut(&ev.line, c.max_line_size);
        let (ts, original) = stamp(ev.ts, ev.read_at, now, c.max_sample_age, c.max_future);
        self.gathering
            .add(stream, ts.as_nanos(), ev.read_at, line, |m| {
                for (i, p) in c.structured_metadata.iter().enumerate() {
                    if let Some(v) = value_of(&p.field, ev) {
                        m.add(i, |out| v.write(out));
                    }
                }
                if line.len() < ev.line.len() {
                    m.add(s.truncated, |out| out.push_str("true"));
                }
                if let Some(t) = original {
                    m.add(s.original, |out| {
                        // Writing to a String cannot fail.
                        let _ = write!(out, "{t}");
                    });
                }
            });
    }

    /// The stream of `ev` in the push being gathered, sending the push first when it is full
    /// (`batch_size`) or `ev` would be one stream too many (`max_streams_per_push`).
    fn stream_for(&mut self, ev: &Event, holding: &mut bool) -> usize {
        let c = &self.shared.config;
        if !self.gathering.is_empty()
            && self.gathering.bytes() + ev.line.len().min(c.max_line_size) > c.batch_size
        {
            self.handoff.flush(&mut self.gathering);
            *holding = false;
        }
        self.key.set(ev, &c.labels);
        if let Some(stream) = self.gathering.stream_of(&self.key) {
            return stream;
        }
        self.labels.set_event(ev, &c.labels);
        if self.labels.dropped() > 0 {
            self.handoff.warn_label_cap(self.labels.dropped());
        }
        if !self.gathering.has_stream(&self.labels)
            && self.gathering.streams() >= c.max_streams_per_push
        {
            self.handoff.warn_stream_cap();
            self.handoff.flush(&mut self.gathering);
            *holding = false;
        }
        self.gathering.open_stream(&self.key, ev, &self.labels)
    }
}

impl Output for LokiOutput {
    fn send(&mut self, events: &[Event], receipt: Receipt) {
        let now = Timestamp::now();
        let mut holding = false;
        for ev in events {
            let stream = self.stream_for(ev, &mut holding);
            if !holding {
                self.gathering.hold(receipt.share());
                holding = true;
            }
            self.add(stream, ev, now);
        }
        receipt.accept();
    }

    fn due(&self) -> Option<Instant> {
        self.gathering
            .started()
            .map(|t| t + self.shared.config.batch_wait)
    }

    fn tick(&mut self, _now: Instant) {
        self.handoff.flush(&mut self.gathering);
    }

    fn finish(self: Box<Self>, deadline: Instant) {
        let LokiOutput {
            mut gathering,
            mut handoff,
            shared,
            ..
        } = *self;
        handoff.flush_until(&mut gathering, deadline);
        *lock(&shared.drain) = Some(deadline);
        shared.wake.notify_all();
        drop(handoff.tx.take());
        for w in handoff.workers {
            while !w.is_finished() && Instant::now() < deadline {
                thread::sleep(FINISH_POLL);
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Handoff {
    fn seal(&mut self, g: &mut Gathering) -> Push {
        self.next_id += 1;
        let push = g.seal(self.next_id);
        self.shared
            .metrics
            .unacked
            .hold(push.id(), push.oldest_read());
        push
    }

    /// Hands the gathered push to a worker, waiting for one to be free.
    fn flush(&mut self, g: &mut Gathering) {
        if g.is_empty() {
            return;
        }
        let push = self.seal(g);
        let sent = self.tx.as_ref().map(|tx| tx.send(push));
        if !matches!(sent, Some(Ok(()))) {
            // Its batches stay unacknowledged: read again at the next start.
            tracing::error!("every Loki push worker has stopped; events are no longer shipped");
        }
    }

    /// As `flush`, giving up at `deadline` (at shutdown).
    fn flush_until(&mut self, g: &mut Gathering, deadline: Instant) {
        if g.is_empty() {
            return;
        }
        let mut push = self.seal(g);
        let Some(tx) = &self.tx else { return };
        loop {
            match tx.try_send(push) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(p)) if Instant::now() >= deadline => {
                    tracing::warn!(
                        entries = p.entries(),
                        "shutting down while every Loki push worker is busy: the last push is not sent; its lines keep their positions and are sent at the next start"
                    );
                    return;
                }
                Err(TrySendError::Full(p)) => {
                    push = p;
                    thread::sleep(FINISH_POLL);
                }
            }
        }
    }

    fn warn_label_cap(&mut self, dropped: usize) {
        if !std::mem::replace(&mut self.label_cap_warned, true) {
            tracing::warn!(
                dropped,
                "an event had more than 15 labels (its source's and its pattern's static labels, host, source and [loki] labels): the last static ones by name were left out (logged once)"
            );
        }
    }

    fn warn_stream_cap(&mut self) {
        if !std::mem::replace(&mut self.stream_cap_warned, true) {
            tracing::warn!(
                max_streams_per_push = self.shared.config.max_streams_per_push,
                "a push reached max_streams_per_push and was cut: a promoted label may take too many values (logged once)"
            );
        }
    }
}

/// A push worker: takes pushes and delivers them, one at a time, until the output finishes.
fn work(shared: &Shared, rx: &Mutex<Receiver<Push>>, jitter: Jitter) {
    let mut worker = Worker {
        client: shared.pusher.client(),
        jitter,
    };
    loop {
        let next = lock(rx).recv();
        let Ok(push) = next else { return };
        shared.metrics.in_flight.inc();
        shared.deliver(push, &mut worker);
        shared.metrics.in_flight.dec();
    }
}

/// What a push worker keeps between pushes.
struct Worker {
    client: LazyClient,
    jitter: Jitter,
}

impl Shared {
    /// Sends `push` until Loki takes it, it is dropped on purpose, or shutdown's deadline.
    fn deliver(&self, push: Push, worker: &mut Worker) {
        let c = &self.config;
        let policy = RetryPolicy {
            base: c.min_backoff,
            cap: c.max_backoff,
            max_elapsed: Duration::MAX,
        };
        let mut retries = 0u32;
        loop {
            let logfmt = self.logfmt.load(Ordering::Relaxed);
            let (body, content_type) = match c.encoding {
                LokiEncoding::Json => (push.json(&self.names, logfmt), "application/json"),
                LokiEncoding::Protobuf => match push.protobuf(&self.names, logfmt) {
                    Ok(body) => (body, "application/x-protobuf"),
                    Err(e) => {
                        tracing::error!(error = %e, entries = push.entries(), "cannot compress a push; its entries are dropped");
                        return self.drop_push(push, "rejected");
                    }
                },
            };
            let Some(timeout) = self.attempt_timeout() else {
                return abandon(&push);
            };
            self.metrics.bytes_sent.inc_by(body.len() as u64);
            let started = Instant::now();
            let answer =
                self.pusher
                    .attempt(&mut worker.client, Bytes::from(body), content_type, timeout);
            self.metrics
                .push_duration
                .observe(started.elapsed().as_secs_f64());
            let (after, why) = match answer {
                Answer::Accepted => {
                    self.metrics.sent(push.entries());
                    return self.done(push);
                }
                Answer::MetadataRefused if !logfmt && push.has_metadata() => {
                    if !self.logfmt.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "Loki refuses structured metadata (Loki 2.x, or allow_structured_metadata is off): from now on it is appended to each line as logfmt"
                        );
                    }
                    continue;
                }
                Answer::MetadataRefused => {
                    return self.reject(push, 400, "structured metadata refused");
                }
                Answer::Rejected { status, why } => return self.reject(push, status, &why),
                Answer::TooLarge => {
                    return match push.split() {
                        Ok((a, b)) => {
                            self.metrics.unacked.hold(b.id(), b.oldest_read());
                            self.deliver(a, worker);
                            self.deliver(b, worker);
                        }
                        Err(push) => {
                            tracing::error!(
                                "Loki (or a proxy before it) answered 413 to a push of one entry; it is dropped"
                            );
                            self.drop_push(push, "too_large");
                        }
                    };
                }
                Answer::Retry { after, why } => (after, why),
            };
            if c.max_retries.is_some_and(|max| retries >= max) {
                tracing::error!(error = %why, entries = push.entries(), "push to Loki failed max_retries times; its entries are dropped");
                return self.drop_push(push, "retries_exhausted");
            }
            let wait = policy.backoff(retries, after, worker.jitter.unit());
            tracing::warn!(error = %why, retry_in = ?wait, entries = push.entries(), "push to Loki failed; retrying (reading pauses while every push worker waits)");
            self.metrics.retries.inc();
            if !self.pause(wait) {
                return abandon(&push);
            }
            retries = retries.saturating_add(1);
        }
    }

    fn reject(&self, push: Push, status: u16, why: &str) {
        tracing::error!(
            status,
            error = %why,
            entries = push.entries(),
            streams = push.streams(),
            "Loki refused a push; it is not retried and its entries count as dropped (Loki may have kept the valid ones)"
        );
        self.drop_push(push, "rejected");
    }

    fn drop_push(&self, push: Push, reason: &'static str) {
        self.metrics.dropped(reason, push.entries());
        self.done(push);
    }

    fn done(&self, push: Push) {
        let id = push.id();
        push.accept();
        self.metrics.unacked.release(id);
    }

    /// The time an attempt may take: `timeout`, and at shutdown no longer than what is left;
    /// `None` when nothing is left.
    fn attempt_timeout(&self) -> Option<Duration> {
        match *lock(&self.drain) {
            None => Some(self.config.timeout),
            Some(deadline) => deadline
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
                .map(|left| left.min(self.config.timeout)),
        }
    }

    /// Waits `wait` before a retry; `false` when shutdown's deadline comes first.
    fn pause(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        let mut drain = lock(&self.drain);
        loop {
            if drain.is_some_and(|deadline| until > deadline) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            drain = self
                .wake
                .wait_timeout(drain, until - now)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
    }
}

/// Shutdown came before Loki took `push`: its batches stay unacknowledged.
fn abandon(push: &Push) {
    tracing::warn!(
        entries = push.entries(),
        "shutting down before Loki took a push: its lines keep their positions and are sent at the next start"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_keeps_its_own_time_unless_loki_would_refuse_it() {
        let t = |s: i64| Timestamp::from_nanos(s * 1_000_000_000);
        let (age, ahead) = (Duration::from_secs(100), Duration::from_secs(10));
        let now = t(1000);
        assert_eq!(stamp(t(950), t(999), now, age, ahead), (t(950), None));
        assert_eq!(stamp(t(1010), t(999), now, age, ahead), (t(1010), None));
        assert_eq!(
            stamp(t(100), t(999), now, age, ahead),
            (t(999), Some(t(100))),
            "too old: the read time, the own time kept"
        );
        assert_eq!(
            stamp(t(2000), t(999), now, age, ahead),
            (t(999), Some(t(2000)))
        );
        assert_eq!(
            stamp(t(100), t(800), now, age, ahead),
            (now, Some(t(100))),
            "read before an outage longer than max_age"
        );
    }
}
