//! `logward replay --send`: the escalations of a replayed log go to the configured receivers
//! through the agent's own delivery path (rate limits, an outbox, retries with backoff), so
//! that routes and receivers can be tried on yesterday's log.
//!
//! Owns: a delivery that lives as long as the command, its outbox in a directory of its own
//! (never the agent's `state_dir`, which a running agent may be using), the tally of what
//! each receiver answered, and waiting at the end until everything is delivered or given up.
//! Must not: decide escalations (the replay's windows do) or know a provider's wire format.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::escalation::Escalation;
use crate::metrics::Metrics;
use crate::notify::outbox::Outbox;
use crate::notify::worker::Delivery;
use crate::notify::{DefaultClock, Lane, NotifyError, Outcome, Receivers, Sender};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the config has no [receiver.*] table: there is nothing to send to")]
    NoReceivers,
    #[error(transparent)]
    Receivers(#[from] NotifyError),
    #[error("cannot make the outbox for --send in {}: {source}", dir.display())]
    Outbox {
        dir: PathBuf,
        source: crate::notify::outbox::OutboxError,
    },
    #[error("cannot start the delivery threads: {0}")]
    Spawn(std::io::Error),
}

/// What one receiver answered during the replay.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Answers {
    pub submitted: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Attempts that failed and were retried (or would have been).
    pub failed_attempts: u64,
    /// Handed back over the receiver's rate (their events go into a later escalation).
    pub over_rate: u64,
    /// The last reason a provider gave for not taking one.
    pub last_error: Option<String>,
}

impl Answers {
    /// Submitted and neither accepted, rejected nor handed back: still in the outbox when the
    /// wait ended, or given up after `retry.max_elapsed`.
    pub fn undelivered(&self) -> u64 {
        self.submitted
            .saturating_sub(self.accepted + self.rejected + self.over_rate)
    }
}

/// Every receiver's answers, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report(pub BTreeMap<Arc<str>, Answers>);

impl Report {
    /// Everything submitted was accepted (or folded over the rate into a later escalation).
    pub fn all_delivered(&self) -> bool {
        self.0
            .values()
            .all(|a| a.rejected == 0 && a.undelivered() == 0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, a) in &self.0 {
            write!(
                f,
                "receiver `{name}`: {} sent, {} accepted, {} rejected, {} over its rate (counted in a later escalation), {} undelivered, {} failed attempts",
                a.submitted,
                a.accepted,
                a.rejected,
                a.over_rate,
                a.undelivered(),
                a.failed_attempts
            )?;
            if let Some(e) = &a.last_error {
                write!(f, "; last error: {e}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

type Tally = Arc<Mutex<Report>>;

fn with_tally(tally: &Tally, receiver: &str, f: impl FnOnce(&mut Answers)) {
    let mut report = tally.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(a) = report.0.get_mut(receiver) {
        f(a);
    }
}

/// A receiver's sender that also writes down what each attempt came to.
struct Counted {
    name: Arc<str>,
    inner: Box<dyn Sender>,
    tally: Tally,
}

impl Sender for Counted {
    fn send(&mut self, esc: &Escalation, key: &str) -> Outcome {
        let outcome = self.inner.send(esc, key);
        with_tally(&self.tally, &self.name, |a| match &outcome {
            Outcome::Accepted { .. } => a.accepted += 1,
            Outcome::Retry { reason, .. } => {
                a.failed_attempts += 1;
                a.last_error = Some(reason.clone());
            }
            Outcome::Rejected { reason } => {
                a.rejected += 1;
                a.last_error = Some(reason.clone());
            }
        });
        outcome
    }
}

/// The delivery of one `replay --send`.
pub struct Sending {
    delivery: Delivery,
    tally: Tally,
    refused: mpsc::Receiver<Escalation>,
    dir: PathBuf,
}

impl Sending {
    /// Opens the config's receivers and starts their delivery threads, with an empty outbox
    /// in a fresh directory under the system's temporary directory.
    pub fn start(config: &Config) -> Result<Sending, SendError> {
        if config.receivers.is_empty() {
            return Err(SendError::NoReceivers);
        }
        let receivers = Receivers::new(&config.receivers, DefaultClock::default())?;
        let tally: Tally = Arc::default();
        let lanes: Vec<Lane> = receivers
            .into_lanes()
            .into_iter()
            .map(|lane| {
                tally
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .0
                    .insert(lane.name.clone(), Answers::default());
                Lane {
                    sender: Box::new(Counted {
                        name: lane.name.clone(),
                        inner: lane.sender,
                        tally: tally.clone(),
                    }),
                    ..lane
                }
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("logward-replay-{}", std::process::id()));
        let (outbox, _) = Outbox::open(&dir).map_err(|source| SendError::Outbox {
            dir: dir.clone(),
            source,
        })?;
        let (tx, refused) = mpsc::channel();
        let over_rate = {
            let tally = tally.clone();
            let tx = Mutex::new(tx);
            Arc::new(move |esc: &Escalation| {
                with_tally(&tally, &esc.receiver, |a| a.over_rate += 1);
                let _ = tx
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .send(esc.clone());
            })
        };
        let delivery = Delivery::start(
            Arc::new(outbox),
            Vec::new(),
            lanes,
            Metrics::new().notify(),
            over_rate,
        )
        .map_err(SendError::Spawn)?;
        Ok(Sending {
            delivery,
            tally,
            refused,
            dir,
        })
    }

    /// Puts an escalation into the outbox for its receiver; never waits for it.
    pub fn submit(&self, esc: &Escalation) {
        with_tally(&self.tally, &esc.receiver, |a| a.submitted += 1);
        self.delivery.submit(esc);
    }

    /// The escalations the receivers handed back over their rate since the last call, for the
    /// windows to fold into their groups' next escalations.
    pub fn over_rate(&self) -> Vec<Escalation> {
        self.refused.try_iter().collect()
    }

    /// Escalations still in the outbox.
    fn queued(&self) -> usize {
        let report = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        report.0.keys().map(|n| self.delivery.queued(n)).sum()
    }

    /// Waits until every receiver's queue is empty, for at most `wait`, then stops the
    /// delivery threads, removes the outbox directory and returns the tally. What was not
    /// delivered by then is dropped, and the report says so.
    pub fn finish(self, wait: Duration) -> Report {
        let until = Instant::now() + wait;
        while self.queued() > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.delivery.stop();
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove the outbox of replay --send");
        }
        let report = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        report.clone()
    }
}
