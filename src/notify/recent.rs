//! The recent escalations and what became of each: a small ring the status page reads.
//!
//! Owns: the last [`RECENT`] escalations handed to delivery, one row per receiver, and their
//! delivery state as the receiver threads report it (in the outbox, retrying with the last
//! error, sent, rejected, given up, over the rate, dropped). Must not: decide or deliver
//! anything, or hold its lock for more than a copy: receiver threads and HTTP requests
//! share it, the per-line pipeline never touches it.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::escalation::{Escalation, Kind};
use crate::event::{Fingerprint, Level, Timestamp};
use crate::status::cut;

/// How many escalations the ring keeps (the oldest goes first).
pub const RECENT: usize = 100;

/// Where an escalation's delivery to one receiver is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum DeliveryState {
    /// In the outbox, waiting for its turn (or being attempted the first time).
    Outbox,
    /// An attempt failed; the next is due at `next_attempt_at`.
    Retrying {
        attempts: u32,
        last_error: String,
        next_attempt_at: Timestamp,
    },
    /// The receiver took it.
    Sent { attempts: u32 },
    /// The receiver refused it for good; not retried.
    Rejected { attempts: u32, last_error: String },
    /// Still failing after `retry.max_elapsed`: given up.
    Expired { attempts: u32, last_error: String },
    /// Over the receiver's rate: its events go into the group's next escalation.
    RateLimited,
    /// The receiver's outbox was full: dropped, oldest first.
    Dropped,
}

/// One escalation to one receiver.
#[derive(Debug, Clone, Serialize)]
pub struct EscalationRow {
    /// The outbox sequence number: unique, in delivery order.
    pub id: u64,
    /// When it was handed to delivery (or found in the outbox at start).
    pub at: Timestamp,
    pub route: std::sync::Arc<str>,
    pub receiver: std::sync::Arc<str>,
    pub kind: Kind,
    pub fingerprint: Option<Fingerprint>,
    pub level: Option<Level>,
    pub service: Option<String>,
    pub ci_run_id: Option<String>,
    pub message: Option<String>,
    pub count: u64,
    pub suppressed: u64,
    /// LogQL that finds the lines (for a receiver's `explore_url`).
    pub loki_query: String,
    #[serde(flatten)]
    pub delivery: DeliveryState,
    /// When `delivery` last changed.
    pub updated_at: Timestamp,
}

/// The ring. Shared by `Arc` between the receiver threads and the HTTP endpoint.
#[derive(Debug, Default)]
pub struct RecentEscalations {
    rows: Mutex<VecDeque<EscalationRow>>,
}

impl RecentEscalations {
    fn lock(&self) -> MutexGuard<'_, VecDeque<EscalationRow>> {
        // Plain rows replaced whole: a panic elsewhere leaves them readable.
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `esc`, item `id` of the outbox, is waiting for its receiver. Known ids are left as they are.
    pub fn queued(&self, id: u64, esc: &Escalation) {
        let mut rows = self.lock();
        if rows.iter().any(|r| r.id == id) {
            return;
        }
        if rows.len() >= RECENT {
            rows.pop_front();
        }
        let now = Timestamp::now();
        rows.push_back(EscalationRow {
            id,
            at: now,
            route: esc.route.clone(),
            receiver: esc.receiver.clone(),
            kind: esc.kind,
            fingerprint: esc.fingerprint,
            level: esc.level,
            service: esc.service.clone(),
            ci_run_id: esc.ci_run_id.clone(),
            message: esc.message.as_deref().map(cut),
            count: esc.count,
            suppressed: esc.suppressed,
            loki_query: esc.loki_query.clone(),
            delivery: DeliveryState::Outbox,
            updated_at: now,
        });
    }

    /// Item `id` moved on; nothing happens if it has left the ring.
    pub fn update(&self, id: u64, state: DeliveryState) {
        let mut rows = self.lock();
        if let Some(r) = rows.iter_mut().rev().find(|r| r.id == id) {
            r.delivery = state;
            r.updated_at = Timestamp::now();
        }
    }

    /// Attempt `attempts` of item `id` failed with `error`; the next comes after `wait`.
    pub fn retrying(&self, id: u64, attempts: u32, error: &str, wait: Duration) {
        let next = Timestamp::now()
            .as_nanos()
            .saturating_add(i64::try_from(wait.as_nanos()).unwrap_or(i64::MAX));
        self.update(
            id,
            DeliveryState::Retrying {
                attempts,
                last_error: cut(error),
                next_attempt_at: Timestamp::from_nanos(next),
            },
        );
    }

    /// The rows, newest first.
    pub fn newest_first(&self) -> Vec<EscalationRow> {
        self.lock().iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::escalation;

    #[test]
    fn the_ring_keeps_the_newest_and_updates_rows_in_place() {
        let recent = RecentEscalations::default();
        for id in 0..RECENT as u64 + 5 {
            recent.queued(id, &escalation(&format!("ERROR {id}")));
        }
        recent.queued(7, &escalation("ERROR again"));
        recent.update(104, DeliveryState::Sent { attempts: 1 });
        recent.retrying(103, 2, "503 Service Unavailable", Duration::from_secs(4));
        recent.update(0, DeliveryState::Sent { attempts: 1 });
        let rows = recent.newest_first();
        assert_eq!(rows.len(), RECENT);
        assert_eq!(rows[0].id, 104);
        assert_eq!(rows[0].delivery, DeliveryState::Sent { attempts: 1 });
        assert_eq!(rows.last().map(|r| r.id), Some(5), "the oldest went first");
        match &rows[1].delivery {
            DeliveryState::Retrying {
                attempts,
                last_error,
                ..
            } => assert_eq!(
                (*attempts, last_error.as_str()),
                (2, "503 Service Unavailable")
            ),
            other => panic!("{other:?}"),
        }
        let json = serde_json::to_value(&rows[1]).unwrap();
        assert_eq!(json["state"], "retrying");
        assert_eq!(json["last_error"], "503 Service Unavailable");
    }
}
