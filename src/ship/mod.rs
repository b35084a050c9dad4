//! Shipping: where events go once processed, and when a batch counts as delivered.
//!
//! Owns `ship` (which events go: [`Ship`]), the [`Output`] trait every output implements
//! (`[output.file]` in [`file`], Grafana Loki in [`loki`]; another, such as a message bus,
//! sits beside them), and the [`Receipt`]: one per batch, shared by every output that holds
//! events of it, that acknowledges the batch once the last share is accepted.
//!
//! Must not: read sources, move positions other than through a receipt's action, or decide
//! escalations. An output accepts its share only when its destination holds the events (or
//! it dropped them on purpose, counted); a share never accepted keeps the batch
//! unacknowledged, so its lines are read again at the next start: replayed, never lost.

pub mod file;
pub mod logproto;
pub mod loki;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::event::Event;

/// `ship`: which events go to the outputs. Escalations see every event whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ship {
    /// Events a pattern matched.
    Matched,
    /// Every event (the default).
    #[default]
    All,
    /// None: logward only escalates.
    None,
}

impl Ship {
    /// The value as written in the config.
    pub fn parse(text: &str) -> Option<Ship> {
        match text {
            "matched" => Some(Ship::Matched),
            "all" => Some(Ship::All),
            "none" => Some(Ship::None),
            _ => None,
        }
    }

    pub fn takes(self, ev: &Event) -> bool {
        match self {
            Ship::Matched => ev.matched,
            Ship::All => true,
            Ship::None => false,
        }
    }
}

/// One batch's acknowledgement. The batch is acknowledged (its action runs, once) when every
/// share of it has been accepted: the one it was made with and each [`Receipt::share`].
///
/// Not `Clone` on purpose: a share is an obligation, taken with `share` and ended with
/// `accept`. A share dropped without `accept` holds the batch back for good (the safe side:
/// its lines are read again at the next start).
pub struct Receipt(Arc<Shares>);

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Receipt")
    }
}

struct Shares {
    pending: AtomicUsize,
    action: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Receipt {
    /// A receipt with one share, whose acknowledgement runs `action`.
    pub fn new(action: impl FnOnce() + Send + 'static) -> Receipt {
        Receipt(Arc::new(Shares {
            pending: AtomicUsize::new(1),
            action: Mutex::new(Some(Box::new(action))),
        }))
    }

    /// Another share of the same batch.
    pub fn share(&self) -> Receipt {
        self.0.pending.fetch_add(1, Ordering::AcqRel);
        Receipt(self.0.clone())
    }

    /// This share is done: the events it stands for are delivered or deliberately dropped.
    pub fn accept(self) {
        if self.0.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let action = self
                .0
                .action
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(action) = action {
                action();
            }
        }
    }
}

/// Somewhere events are delivered to.
pub trait Output: Send {
    /// Takes the events of one batch that go here (never none), with a share of the batch's
    /// receipt to accept once its destination holds them all, or some were dropped on
    /// purpose and counted. May block while the output is full: that pauses reading.
    fn send(&mut self, events: &[Event], receipt: Receipt);

    /// When [`Output::tick`] must run next, when something waits on a timer.
    fn due(&self) -> Option<Instant> {
        None
    }

    /// Time passed: send what waited long enough.
    fn tick(&mut self, _now: Instant) {}

    /// The input ended: deliver what is pending, until `deadline` at most. What is not
    /// delivered by then is never accepted, and read again at the next start.
    fn finish(self: Box<Self>, deadline: Instant);
}

/// The outputs of the agent and the `ship` choice in front of them.
pub struct Outputs {
    ship: Ship,
    outputs: Vec<Box<dyn Output>>,
}

impl Outputs {
    pub fn new(ship: Ship, outputs: Vec<Box<dyn Output>>) -> Outputs {
        Outputs { ship, outputs }
    }

    /// Hands the events `ship` takes to every output, each with a share of `receipt`.
    pub fn send(&mut self, mut events: Vec<Event>, receipt: &Receipt) {
        if self.ship != Ship::All {
            events.retain(|e| self.ship.takes(e));
        }
        if events.is_empty() {
            return;
        }
        for out in &mut self.outputs {
            out.send(&events, receipt.share());
        }
    }

    /// The earliest time an output waits for.
    pub fn due(&self) -> Option<Instant> {
        self.outputs.iter().filter_map(|o| o.due()).min()
    }

    pub fn tick(&mut self, now: Instant) {
        for out in &mut self.outputs {
            if out.due().is_some_and(|d| d <= now) {
                out.tick(now);
            }
        }
    }

    /// Drains every output, in order, until `deadline` at most.
    pub fn finish(self, deadline: Instant) {
        for out in self.outputs {
            out.finish(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_batch_is_acknowledged_when_its_last_share_is_accepted() {
        let done = Arc::new(AtomicBool::new(false));
        let r = Receipt::new({
            let done = done.clone();
            move || done.store(true, Ordering::SeqCst)
        });
        let (a, b) = (r.share(), r.share());
        r.accept();
        a.accept();
        assert!(!done.load(Ordering::SeqCst), "one share still out");
        b.accept();
        assert!(done.load(Ordering::SeqCst));
    }

    #[test]
    fn a_share_dropped_without_accept_holds_the_batch_back() {
        let done = Arc::new(AtomicBool::new(false));
        let r = Receipt::new({
            let done = done.clone();
            move || done.store(true, Ordering::SeqCst)
        });
        drop(r.share());
        r.accept();
        assert!(!done.load(Ordering::SeqCst));
    }
}
