//! The agent's own metrics, served as Prometheus text on `/metrics`.
//!
//! Owns metric names and help texts. Stages get cheap handles (atomics) and
//! update them per batch, not per line.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

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
    escalations: Family<EscalationLabel, Counter>,
    suppressed: Family<SuppressedLabel, Counter>,
    fingerprints_active: Gauge,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EscalationLabel {
    pub route: String,
    pub receiver: String,
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SuppressedLabel {
    pub route: String,
    pub reason: &'static str,
}

/// The handles the escalation driver updates.
#[derive(Debug, Clone)]
pub struct EscalationMetrics {
    escalations: Family<EscalationLabel, Counter>,
    suppressed: Family<SuppressedLabel, Counter>,
    active: Gauge,
}

impl EscalationMetrics {
    pub fn escalation(&self, route: &str, receiver: &str, kind: &'static str) {
        self.escalations
            .get_or_create(&EscalationLabel {
                route: route.to_string(),
                receiver: receiver.to_string(),
                kind,
            })
            .inc();
    }

    pub fn suppressed(&self, route: &str, reason: &'static str, n: u64) {
        self.suppressed
            .get_or_create(&SuppressedLabel {
                route: route.to_string(),
                reason,
            })
            .inc_by(n);
    }

    pub fn active(&self, groups: usize) {
        self.active.set(i64::try_from(groups).unwrap_or(i64::MAX));
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
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
            fingerprints_active: Gauge::default(),
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
            "escalations",
            "Escalations handed to a receiver, by route and kind (first, repeat, summary)",
            m.escalations.clone(),
        );
        r.register(
            "suppressed",
            "Routed events not notified on their own, by route and reason",
            m.suppressed.clone(),
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
        for result in ["success", "failure"] {
            let _ = m.config_reloads.get_or_create(&ResultLabel { result });
        }
        Arc::new(m)
    }

    /// Counts a reload attempt.
    pub fn escalation(&self) -> EscalationMetrics {
        EscalationMetrics {
            escalations: self.escalations.clone(),
            suppressed: self.suppressed.clone(),
            active: self.fingerprints_active.clone(),
        }
    }

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

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
