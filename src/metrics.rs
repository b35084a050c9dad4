//! The agent's own metrics, served as Prometheus text on `/metrics`.
//!
//! Owns metric names and help texts. Stages get cheap handles (atomics) and
//! update them per batch, not per line.

mod process;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::escalation::{Escalation, Kind};
use crate::event::Timestamp;
use crate::notify::{Refused, Sent};
use crate::route::Route;
use crate::window::{Counters, Reason};

/// The `reason`s of `logward_receiver_errors_total` that mean an escalation is lost: what the
/// alert rules watch, so each receiver has these series from the start.
const LOST: [&str; 4] = ["rejected", "expired", "outbox_full", "unreadable"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutputLabel {
    pub output: String,
}

/// Every metric family of the agent.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    lines_read: Family<SourceLabel, Counter>,
    bytes_read: Family<SourceLabel, Counter>,
    lines_truncated: Family<SourceLabel, Counter>,
    rotations: Family<SourceLabel, Counter>,
    truncations: Family<SourceLabel, Counter>,
    open_files: Family<SourceLabel, Gauge>,
    files_tracked: Family<SourceLabel, Gauge>,
    position_lag: Family<SourceLabel, Gauge>,
    events: Family<SourceLabel, Counter>,
    output_events: Family<OutputLabel, Counter>,
    output_errors: Family<OutputLabel, Counter>,
    config_reloads: Family<ResultLabel, Counter>,
    escalations: Family<EscalationLabels, Counter>,
    suppressed: Family<SuppressedLabels, Counter>,
    receiver_errors: Family<ReceiverReasonLabels, Counter>,
    receiver_retries: Family<ReceiverLabel, Counter>,
    outbox_items: Family<ReceiverLabel, Gauge>,
    fingerprints_active: Gauge,
    templates: Gauge,
    templates_evicted: Counter,
    groups_evicted: Family<RouteLabel, Counter>,
    loki: LokiMetrics,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

/// The template miner's size and evictions, updated at each checkpoint.
#[derive(Debug, Clone)]
pub struct TemplateMetrics {
    live: Gauge,
    evicted: Counter,
}

impl TemplateMetrics {
    /// `evictions` is the miner's running total.
    pub fn update(&self, live: usize, evictions: u64) {
        self.live.set(i64::try_from(live).unwrap_or(i64::MAX));
        let counted = self.evicted.get();
        if evictions > counted {
            self.evicted.inc_by(evictions - counted);
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EscalationLabels {
    pub route: String,
    pub receiver: String,
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SuppressedLabels {
    pub route: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabel {
    pub receiver: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverReasonLabels {
    pub receiver: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// The handles the Loki output updates.
#[derive(Debug, Clone)]
pub struct LokiMetrics {
    entries: Family<ResultLabel, Counter>,
    dropped: Family<ReasonLabel, Counter>,
    /// Seconds per HTTP attempt, whatever its answer.
    pub push_duration: Histogram,
    /// Request bodies, as sent on the wire (compressed), every attempt.
    pub bytes_sent: Counter,
    pub retries: Counter,
    /// Pushes a push worker is sending or retrying now.
    pub in_flight: Gauge,
    pub unacked: Arc<Unacked>,
}

impl LokiMetrics {
    fn new() -> LokiMetrics {
        LokiMetrics {
            entries: Family::default(),
            dropped: Family::default(),
            push_duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            bytes_sent: Counter::default(),
            retries: Counter::default(),
            in_flight: Gauge::default(),
            unacked: Arc::default(),
        }
    }

    /// `logward_loki_entries_total{result="sent"}`: entries Loki took.
    pub fn sent(&self, entries: usize) {
        self.entries
            .get_or_create(&ResultLabel { result: "sent" })
            .inc_by(entries as u64);
    }

    /// `logward_loki_entries_total{result="dropped"}` and
    /// `logward_loki_dropped_entries_total{reason}`: entries given up on purpose.
    pub fn dropped(&self, reason: &'static str, entries: usize) {
        self.entries
            .get_or_create(&ResultLabel { result: "dropped" })
            .inc_by(entries as u64);
        self.dropped
            .get_or_create(&ReasonLabel { reason })
            .inc_by(entries as u64);
    }
}

/// The pushes not yet acknowledged, by id, with the read time of their oldest event and how
/// many parts of each (a split push has two) are still out; read at each scrape.
#[derive(Debug, Default)]
pub struct Unacked {
    pushes: Mutex<HashMap<u64, (Timestamp, u32)>>,
}

impl Unacked {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Timestamp, u32)>> {
        self.pushes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One more part of push `id` is out.
    pub fn hold(&self, id: u64, oldest_read: Timestamp) {
        self.lock().entry(id).or_insert((oldest_read, 0)).1 += 1;
    }

    /// One part of push `id` is acknowledged.
    pub fn release(&self, id: u64) {
        let mut pushes = self.lock();
        if let Some((_, parts)) = pushes.get_mut(&id) {
            *parts -= 1;
            if *parts == 0 {
                pushes.remove(&id);
            }
        }
    }

    /// Seconds since the oldest unacknowledged event was read; 0 when none is.
    pub fn oldest_age(&self, now: Timestamp) -> f64 {
        self.lock()
            .values()
            .map(|(t, _)| *t)
            .min()
            .map_or(0.0, |t| {
                (now.as_nanos().saturating_sub(t.as_nanos())).max(0) as f64 / 1e9
            })
    }
}

impl Collector for Unacked {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let age = ConstGauge::new(self.oldest_age(Timestamp::now()));
        let metric = encoder.encode_descriptor(
            "loki_oldest_unacked_age_seconds",
            "Age of the oldest event read and not yet acknowledged by Loki (0 when none is)",
            None,
            age.metric_type(),
        )?;
        age.encode(metric)
    }
}

/// The handles one source updates.
#[derive(Debug, Clone)]
pub struct SourceMetrics {
    pub lines_read: Counter,
    pub bytes_read: Counter,
    pub lines_truncated: Counter,
    pub rotations: Counter,
    pub truncations: Counter,
    pub open_files: Gauge,
    pub files_tracked: Gauge,
    pub position_lag: Gauge,
    pub events: Counter,
}

/// The handles the notify driver updates: what receivers were sent, what was not notified
/// and why, and what receivers failed to take.
#[derive(Debug, Clone)]
pub struct NotifyMetrics {
    escalations: Family<EscalationLabels, Counter>,
    suppressed: Family<SuppressedLabels, Counter>,
    receiver_errors: Family<ReceiverReasonLabels, Counter>,
    receiver_retries: Family<ReceiverLabel, Counter>,
    outbox_items: Family<ReceiverLabel, Gauge>,
    groups_evicted: Family<RouteLabel, Counter>,
    active: Gauge,
}

impl NotifyMetrics {
    /// Counts one escalation's outcome: sent in `logward_escalations_total{route,receiver,kind}`,
    /// failed in `logward_receiver_errors_total{receiver,reason="failed"}`. A rate-limited one is not counted
    /// here: folded back into its group, it is counted in events by the windows
    /// (`Reason::RateLimited`), and reaches this through [`NotifyMetrics::suppressed`].
    pub fn record(&self, esc: &Escalation, outcome: &Result<Sent, Refused>) {
        match outcome {
            Ok(_) => {
                let labels = EscalationLabels {
                    route: esc.route.to_string(),
                    receiver: esc.receiver.to_string(),
                    kind: esc.kind.as_str(),
                };
                self.escalations.get_or_create(&labels).inc();
            }
            Err(Refused::Failed(_)) => self.receiver_error(&esc.receiver, "failed"),
            Err(Refused::RateLimited) => {}
        }
    }

    /// Creates at zero every series the routes and receivers can count, so that `increase()`
    /// and alert rules see the first escalation, suppression or loss, not only the later ones.
    pub fn init<'a>(&self, routes: &[Route], receivers: impl IntoIterator<Item = &'a str>) {
        for route in routes {
            for receiver in &route.receivers {
                for kind in Kind::ALL {
                    let _ = self.escalations.get_or_create(&EscalationLabels {
                        route: route.name.to_string(),
                        receiver: receiver.to_string(),
                        kind: kind.as_str(),
                    });
                }
            }
            for reason in Reason::ALL {
                let _ = self.suppressed.get_or_create(&SuppressedLabels {
                    route: route.name.to_string(),
                    reason: reason.as_str(),
                });
            }
            let _ = self.groups_evicted.get_or_create(&RouteLabel {
                route: route.name.to_string(),
            });
        }
        for receiver in receivers {
            let labels = ReceiverLabel {
                receiver: receiver.to_string(),
            };
            let _ = self.receiver_retries.get_or_create(&labels);
            let _ = self.outbox_items.get_or_create(&labels);
            for reason in LOST {
                let _ = self.receiver_errors.get_or_create(&ReceiverReasonLabels {
                    receiver: receiver.to_string(),
                    reason,
                });
            }
        }
    }

    /// `logward_escalations_total{route,receiver,kind}`: a receiver accepted `esc`.
    pub fn accepted(&self, esc: &Escalation) {
        self.record(esc, &Ok(Sent { receiver_type: "" }));
    }

    /// `logward_receiver_errors_total{receiver,reason}`: an escalation the receiver will
    /// never get (`rejected`, `expired`, `outbox_full`, `unreadable`) or an attempt that
    /// failed outside the outbox (`failed`).
    pub fn receiver_error(&self, receiver: &str, reason: &'static str) {
        let labels = ReceiverReasonLabels {
            receiver: receiver.to_string(),
            reason,
        };
        self.receiver_errors.get_or_create(&labels).inc();
    }

    /// `logward_receiver_retries_total{receiver}`: an attempt that will be tried again.
    pub fn retry(&self, receiver: &str) {
        let labels = ReceiverLabel {
            receiver: receiver.to_string(),
        };
        self.receiver_retries.get_or_create(&labels).inc();
    }

    /// `logward_outbox_items{receiver}`: escalations in the receiver's outbox now.
    pub fn outbox_items(&self, receiver: &str, items: usize) {
        let labels = ReceiverLabel {
            receiver: receiver.to_string(),
        };
        self.outbox_items
            .get_or_create(&labels)
            .set(i64::try_from(items).unwrap_or(i64::MAX));
    }

    /// `logward_fingerprints_active`: the groups live in the windows now.
    pub fn active(&self, groups: usize) {
        self.active.set(i64::try_from(groups).unwrap_or(i64::MAX));
    }

    /// Adds the windows' counters (`Windows::take_counters`) to
    /// `logward_suppressed_total{route,reason}` (`rate_limited` included) and
    /// `logward_groups_evicted_total{route}`.
    pub fn suppressed(&self, counters: &Counters) {
        for (route, n) in &counters.evictions {
            self.groups_evicted
                .get_or_create(&RouteLabel {
                    route: route.to_string(),
                })
                .inc_by(*n);
        }
        for ((route, reason), n) in &counters.suppressed {
            self.suppressed
                .get_or_create(&SuppressedLabels {
                    route: route.to_string(),
                    reason: reason.as_str(),
                })
                .inc_by(*n);
        }
    }
}

/// The handles one output updates.
#[derive(Debug, Clone)]
pub struct OutputMetrics {
    pub events: Counter,
    pub errors: Counter,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("logward");
        registry.register(
            "build",
            "logward's version and the git commit it was built from",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("commit", env!("LOGWARD_GIT_COMMIT")),
            ]),
        );
        let mut m = Metrics {
            lines_read: Family::default(),
            bytes_read: Family::default(),
            lines_truncated: Family::default(),
            rotations: Family::default(),
            truncations: Family::default(),
            open_files: Family::default(),
            files_tracked: Family::default(),
            position_lag: Family::default(),
            events: Family::default(),
            output_events: Family::default(),
            output_errors: Family::default(),
            config_reloads: Family::default(),
            escalations: Family::default(),
            suppressed: Family::default(),
            receiver_errors: Family::default(),
            receiver_retries: Family::default(),
            outbox_items: Family::default(),
            fingerprints_active: Gauge::default(),
            templates: Gauge::default(),
            templates_evicted: Counter::default(),
            groups_evicted: Family::default(),
            loki: LokiMetrics::new(),
            registry,
        };
        let r = &mut m.registry;
        r.register(
            "lines_read",
            "Lines read by a source (before container reassembly)",
            m.lines_read.clone(),
        );
        r.register("bytes_read", "Bytes read by a source", m.bytes_read.clone());
        r.register(
            "groups_evicted",
            "Groups a route evicted to stay under max_groups (its summary sent first)",
            m.groups_evicted.clone(),
        );
        r.register(
            "templates",
            "Templates the template miner holds (capped, least recently used evicted)",
            m.templates.clone(),
        );
        r.register(
            "templates_evicted",
            "Templates the miner evicted to stay under its cap",
            m.templates_evicted.clone(),
        );
        r.register(
            "fingerprints_active",
            "Live groups in the routes' windows",
            m.fingerprints_active.clone(),
        );
        r.register(
            "lines_truncated",
            "Lines longer than max_line_bytes, cut and flagged",
            m.lines_truncated.clone(),
        );
        r.register(
            "file_rotations",
            "Files that were rotated (renamed or deleted) while tailed",
            m.rotations.clone(),
        );
        r.register(
            "file_truncations",
            "Files that shrank below their read position and were read again from the start",
            m.truncations.clone(),
        );
        r.register(
            "open_files",
            "Files a source holds open now (capped by max_open_files)",
            m.open_files.clone(),
        );
        r.register(
            "files_tracked",
            "Files a source tracks now, open or not",
            m.files_tracked.clone(),
        );
        r.register(
            "position_lag_bytes",
            "Bytes written to a source's files and not yet delivered",
            m.position_lag.clone(),
        );
        r.register("events", "Events produced by a source", m.events.clone());
        r.register(
            "output_events",
            "Events written and acknowledged by an output",
            m.output_events.clone(),
        );
        r.register(
            "output_errors",
            "Failed output writes (retried)",
            m.output_errors.clone(),
        );
        r.register(
            "config_reloads",
            "Pattern reloads (SIGHUP or file change), by result; a failure keeps the running set",
            m.config_reloads.clone(),
        );
        r.register(
            "escalations",
            "Escalations a receiver took, by route, receiver and kind (first, repeat, summary)",
            m.escalations.clone(),
        );
        r.register(
            "suppressed",
            "Events not notified, by route and reason (deduplicated, below_threshold, group_wait, inhibited, silenced, rate_limited)",
            m.suppressed.clone(),
        );
        r.register(
            "receiver_errors",
            "Escalations a receiver will never get, by reason (rejected, expired, outbox_full, unreadable)",
            m.receiver_errors.clone(),
        );
        r.register(
            "receiver_retries",
            "Delivery attempts that failed and will be tried again",
            m.receiver_retries.clone(),
        );
        r.register(
            "outbox_items",
            "Escalations in a receiver's outbox, waiting for delivery",
            m.outbox_items.clone(),
        );
        r.register(
            "loki_entries",
            "Entries given to Loki, by result: sent (Loki answered 2xx) or dropped",
            m.loki.entries.clone(),
        );
        r.register(
            "loki_dropped_entries",
            "Entries dropped on purpose, by reason: rejected (400 or another refusal), too_large (413 for one entry), retries_exhausted (max_retries)",
            m.loki.dropped.clone(),
        );
        r.register(
            "loki_push_duration_seconds",
            "Duration of each push request to Loki, whatever its answer",
            m.loki.push_duration.clone(),
        );
        r.register(
            "loki_sent_bytes",
            "Bytes of push request bodies sent to Loki (compressed), every attempt",
            m.loki.bytes_sent.clone(),
        );
        r.register(
            "loki_retries",
            "Push attempts that failed and will be tried again",
            m.loki.retries.clone(),
        );
        r.register(
            "loki_pushes_in_flight",
            "Pushes being sent or retried now (at most max_in_flight)",
            m.loki.in_flight.clone(),
        );
        r.register_collector(Box::new(m.loki.unacked.clone()));
        r.register_collector(Box::new(process::Process));
        for result in ["success", "failure"] {
            let _ = m.config_reloads.get_or_create(&ResultLabel { result });
        }
        Arc::new(m)
    }

    pub fn templates(&self) -> TemplateMetrics {
        TemplateMetrics {
            live: self.templates.clone(),
            evicted: self.templates_evicted.clone(),
        }
    }

    /// Counts a reload attempt.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.config_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    pub fn source(&self, name: &str) -> SourceMetrics {
        let l = SourceLabel {
            source: name.to_string(),
        };
        SourceMetrics {
            lines_read: self.lines_read.get_or_create(&l).clone(),
            bytes_read: self.bytes_read.get_or_create(&l).clone(),
            lines_truncated: self.lines_truncated.get_or_create(&l).clone(),
            rotations: self.rotations.get_or_create(&l).clone(),
            truncations: self.truncations.get_or_create(&l).clone(),
            open_files: self.open_files.get_or_create(&l).clone(),
            files_tracked: self.files_tracked.get_or_create(&l).clone(),
            position_lag: self.position_lag.get_or_create(&l).clone(),
            events: self.events.get_or_create(&l).clone(),
        }
    }

    pub fn output(&self, name: &str) -> OutputMetrics {
        let l = OutputLabel {
            output: name.to_string(),
        };
        OutputMetrics {
            events: self.output_events.get_or_create(&l).clone(),
            errors: self.output_errors.get_or_create(&l).clone(),
        }
    }

    pub fn loki(&self) -> LokiMetrics {
        self.loki.clone()
    }

    pub fn notify(&self) -> NotifyMetrics {
        NotifyMetrics {
            escalations: self.escalations.clone(),
            suppressed: self.suppressed.clone(),
            receiver_errors: self.receiver_errors.clone(),
            receiver_retries: self.receiver_retries.clone(),
            outbox_items: self.outbox_items.clone(),
            groups_evicted: self.groups_evicted.clone(),
            active: self.fingerprints_active.clone(),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
