//! The escalation driver: feeds routed events to the windows, runs their
//! timers, keeps their state in `state_dir`, and hands the escalations they
//! decide to the notifiers.
//!
//! It owns `windows.json` and the order that makes "tell once" survive a
//! crash: an escalation that is a first or a repeat is sent only after the
//! window state that records it is on disk. It must not decide anything
//! itself (that is `window`'s) nor talk to a receiver (that is `notify`'s).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::escalation::{Escalation, hostname};
use crate::event::{Event, Timestamp};
use crate::metrics::NotifyMetrics;
use crate::route::Route;
use crate::silence::SilenceWatch;
use crate::state::write_atomic;
use crate::status::{Board, Publisher};
use crate::window::{Windows, WindowsSnapshot};

const WINDOWS_FILE: &str = "windows.json";

#[derive(Debug, thiserror::Error)]
pub enum EscalateError {
    #[error("cannot read {}: {source} — check its permissions", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot start a thread: {0}")]
    Spawn(io::Error),
}

/// How often the timer thread looks even when no timer is due (and saves a changed state).
const TIMER_PERIOD: Duration = Duration::from_secs(1);
/// The least time between two saves of the window state made to let escalations out.
const SAVE_SPACING: Duration = Duration::from_millis(200);
/// Escalations on their way to the notifier: when receivers are slower than
/// the windows decide, deciding waits (and so does reading), memory does not grow.
const NOTIFIER_QUEUE: usize = 1024;
/// The most escalations the notifier hands to delivery at once.
const NOTIFIER_BATCH: usize = 256;

/// Where escalations go once decided.
pub trait Dispatch {
    fn dispatch(&mut self, esc: Escalation);
}

impl<F: FnMut(Escalation)> Dispatch for F {
    fn dispatch(&mut self, esc: Escalation) {
        self(esc)
    }
}

/// The windows of a running agent (or of a replay) and their state file.
pub struct Escalator {
    windows: Windows,
    /// `None` for `replay`: nothing is saved.
    path: Option<PathBuf>,
    /// The silences of `state_dir`, re-read as they change; none in `replay`.
    silences: Option<SilenceWatch>,
    metrics: Option<NotifyMetrics>,
    out: Vec<Escalation>,
    /// Decided, waiting for the save that must precede them (see `flush`).
    held: Vec<Escalation>,
    last_save: Option<Instant>,
    /// Publishes the busiest groups for the status page; none in `replay`.
    publisher: Option<Publisher>,
}

impl Escalator {
    /// The windows of `routes`, restored from `state_dir` when it has them.
    pub fn open(
        routes: Arc<[Route]>,
        state_dir: &Path,
        metrics: NotifyMetrics,
        now: Timestamp,
    ) -> Result<Escalator, EscalateError> {
        let path = state_dir.join(WINDOWS_FILE);
        let mut windows = Windows::new(routes).with_host(hostname());
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<WindowsSnapshot>(&bytes) {
                Ok(s) => windows.restore(s, now),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "window state is unreadable; starting with empty windows (groups may be notified again)")
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(EscalateError::Read { path, source }),
        }
        let mut silences = SilenceWatch::new(state_dir);
        if let Err(e) = silences.refresh(now) {
            tracing::error!(error = %e, "cannot read the silences; none applies until they can be read");
        }
        Ok(Escalator {
            windows,
            path: Some(path),
            silences: Some(silences),
            metrics: Some(metrics),
            out: Vec::new(),
            held: Vec::new(),
            last_save: None,
            publisher: None,
        })
    }

    /// Windows that live in memory only, for `replay`.
    pub fn in_memory(routes: Arc<[Route]>) -> Escalator {
        Escalator {
            windows: Windows::new(routes).with_host(hostname()),
            path: None,
            silences: None,
            metrics: None,
            out: Vec::new(),
            held: Vec::new(),
            last_save: None,
            publisher: None,
        }
    }

    pub fn routes(&self) -> &Arc<[Route]> {
        self.windows.routes()
    }

    /// The event keys that are Loki stream labels, for escalations' `loki_query`.
    pub fn with_loki_labels(mut self, keys: Vec<String>) -> Escalator {
        self.windows = self.windows.with_loki_labels(keys);
        self
    }

    /// Observes every routed event of a batch at `now` (`None`: at each event's own time).
    pub fn observe(&mut self, events: &[Event], now: Option<Timestamp>, to: &mut impl Dispatch) {
        for ev in events {
            let Some(routed) = ev.routed.as_deref() else {
                continue;
            };
            let at = now.unwrap_or(ev.ts);
            if now.is_none() {
                // Replay: time is the events' own; windows close as it passes.
                self.windows.tick(at, &mut self.out);
            }
            for &r in &routed.routes {
                let keep = self
                    .windows
                    .routes()
                    .get(r)
                    .map_or(0, |route| route.context_lines);
                let context = &routed.context[routed.context.len().saturating_sub(keep)..];
                let silenced = self.silences.as_ref().and_then(|s| s.silenced_by(ev, at));
                self.windows
                    .observe(r, ev, context, at, silenced, &mut self.out);
            }
        }
        self.flush(to);
    }

    /// Runs the timers due at `now`, and takes in changed silences.
    pub fn tick(&mut self, now: Timestamp, to: &mut impl Dispatch) {
        if let Some(s) = self.silences.as_mut() {
            match s.refresh(now) {
                Ok(true) => tracing::info!(active = s.active_count(now), "silences changed"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the silences; the previous ones stay in force")
                }
            }
        }
        self.windows.tick(now, &mut self.out);
        self.flush(to);
        self.publish(now);
    }

    /// Publishes the busiest groups for the status page, when [`crate::status::PUBLISH_EVERY`]
    /// has passed: a timer's job, never an event's.
    fn publish(&mut self, now: Timestamp) {
        let Some(p) = self.publisher.as_mut().filter(|p| p.due(now)) else {
            return;
        };
        let silences = self.silences.as_ref();
        p.publish(
            &self.windows,
            |sample| {
                silences
                    .and_then(|w| w.silenced_by(sample, now))
                    .map(String::from)
            },
            now,
        );
    }

    /// The input ended (replay): every window runs to its end.
    pub fn finish(&mut self, to: &mut impl Dispatch) {
        self.windows.finish(&mut self.out);
        self.flush(to);
    }

    /// A receiver refused an escalation (over its rate): its events go into the group's next one.
    pub fn fold(&mut self, refused: &Escalation, now: Timestamp, to: &mut impl Dispatch) {
        if !self.windows.fold(refused, now, &mut self.out) {
            tracing::warn!(route = %refused.route, receiver = %refused.receiver, "a refused escalation's route or receiver is gone; its count is dropped");
        }
        self.flush(to);
    }

    pub fn next_due(&self) -> Option<Timestamp> {
        self.windows.next_due()
    }

    /// Saves the window state if it changed.
    pub fn save(&mut self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.windows.dirty() {
            return Ok(());
        }
        let snapshot = self.windows.snapshot();
        let bytes = serde_json::to_vec(&snapshot).map_err(io::Error::other)?;
        write_atomic(path, &bytes)?;
        self.windows.saved(&snapshot);
        self.last_save = Some(Instant::now());
        Ok(())
    }

    /// Hands out what the windows decided: after saving, when a first or a
    /// repeat is among it, so that a crash cannot make it go out twice. Saves
    /// are at most one per `SAVE_SPACING`: escalations decided in between are
    /// held until the next one (the timer thread comes back for them), so a
    /// storm of new groups costs a few saves a second, not one per batch.
    fn flush(&mut self, to: &mut impl Dispatch) {
        self.held.append(&mut self.out);
        if !self.held.is_empty() && self.windows.must_save_now() {
            let spaced = self.last_save.is_none_or(|t| t.elapsed() >= SAVE_SPACING);
            if !spaced {
                self.count();
                return;
            }
            if let Err(e) = self.save() {
                tracing::error!(error = %e, "cannot save window state before notifying; after a crash this notification may be sent again");
            }
        }
        for esc in self.held.drain(..) {
            to.dispatch(esc);
        }
        self.count();
    }

    /// Escalations wait for a save: the timer must come back within `SAVE_SPACING`.
    fn waiting(&self) -> bool {
        !self.held.is_empty()
    }

    fn count(&mut self) {
        let Some(m) = &self.metrics else { return };
        m.suppressed(&self.windows.take_counters());
        m.active(self.windows.active_groups());
    }
}

/// The escalation machinery of a running agent: the windows behind a lock,
/// a timer thread and a notifier thread.
pub struct Running {
    handle: WindowsHandle,
    stop_timer: mpsc::Sender<()>,
    timer: JoinHandle<()>,
    notifier: JoinHandle<()>,
}

/// What the delivery thread and the checkpointer hold: the windows and where their escalations go.
#[derive(Clone)]
pub struct WindowsHandle {
    escalator: Arc<Mutex<Escalator>>,
    tx: mpsc::SyncSender<ToNotifier>,
    /// What receivers refused, folded back by the timer thread: the notifier
    /// never takes the windows' lock, whose holder may be waiting for it.
    refused: Arc<Mutex<Vec<Escalation>>>,
}

/// The notifier's input. Handles, which hold its senders, may outlive it (the
/// delivery's `refused` callback keeps one), so it is told to stop rather than
/// waiting for the senders to go.
enum ToNotifier {
    Send(Box<Escalation>),
    Stop,
}

impl WindowsHandle {
    fn lock(&self) -> MutexGuard<'_, Escalator> {
        // The windows are plain data updated in place; a panic elsewhere leaves them usable.
        self.escalator.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets the windows observe a batch's routed events, at the current time.
    pub fn observe(&self, events: &[Event]) {
        if events.iter().all(|e| e.routed.is_none()) {
            return;
        }
        let tx = self.tx.clone();
        self.lock()
            .observe(events, Some(Timestamp::now()), &mut |e| send(&tx, e));
    }

    pub fn save(&self) -> io::Result<()> {
        self.lock().save()
    }

    /// Saves and hands out the escalations waiting for a save (at shutdown).
    fn release_held(&self) {
        let tx = self.tx.clone();
        let mut e = self.lock();
        e.last_save = None;
        e.flush(&mut |esc| send(&tx, esc));
    }

    /// Runs the timers, folds what receivers refused, saves. Returns when to come back.
    fn tick(&self) -> (Option<Timestamp>, bool) {
        let tx = self.tx.clone();
        let refused = std::mem::take(&mut *self.refused.lock().unwrap_or_else(|p| p.into_inner()));
        let mut e = self.lock();
        let now = Timestamp::now();
        for esc in &refused {
            e.fold(esc, now, &mut |x| send(&tx, x));
        }
        e.tick(now, &mut |esc| send(&tx, esc));
        if let Err(err) = e.save() {
            tracing::error!(error = %err, "cannot save window state; will retry");
        }
        // What waited for that save goes out now.
        e.flush(&mut |esc| send(&tx, esc));
        (e.next_due(), e.waiting())
    }

    /// A receiver refused `esc`: its events go into the group's next escalation.
    pub fn fold(&self, esc: &Escalation) {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(esc.clone());
    }
}

fn send(tx: &mpsc::SyncSender<ToNotifier>, esc: Escalation) {
    if tx.send(ToNotifier::Send(Box::new(esc))).is_err() {
        tracing::error!("the notifier has stopped; an escalation is dropped");
    }
}

impl Running {
    /// Restores the windows from `state_dir` and starts the timer (which also publishes the
    /// busiest groups to `board`) and the notifier, which hands the escalations to `deliver`: all that are waiting at once (up to
    /// [`NOTIFIER_BATCH`]), so that a burst is written to the outbox as one group commit.
    /// `loki_labels`: see [`Escalator::with_loki_labels`].
    pub fn start(
        routes: Arc<[Route]>,
        state_dir: &Path,
        metrics: NotifyMetrics,
        loki_labels: Vec<String>,
        board: Arc<Board>,
        mut deliver: impl FnMut(&[Escalation]) + Send + 'static,
    ) -> Result<Running, EscalateError> {
        let mut escalator = Escalator::open(routes, state_dir, metrics, Timestamp::now())?
            .with_loki_labels(loki_labels);
        escalator.publisher = Some(Publisher::new(board));
        let (tx, rx) = mpsc::sync_channel::<ToNotifier>(NOTIFIER_QUEUE);
        let handle = WindowsHandle {
            escalator: Arc::new(Mutex::new(escalator)),
            tx,
            refused: Arc::default(),
        };
        let notifier = thread::Builder::new()
            .name("notifier".into())
            .spawn(move || {
                let mut burst = Vec::new();
                while let Ok(ToNotifier::Send(esc)) = rx.recv() {
                    burst.push(*esc);
                    let mut stop = false;
                    while burst.len() < NOTIFIER_BATCH {
                        match rx.try_recv() {
                            Ok(ToNotifier::Send(esc)) => burst.push(*esc),
                            Ok(ToNotifier::Stop) => {
                                stop = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    deliver(&burst);
                    burst.clear();
                    if stop {
                        return;
                    }
                }
            })
            .map_err(EscalateError::Spawn)?;
        let (stop_timer, stopped) = mpsc::channel::<()>();
        let timer = {
            let handle = handle.clone();
            thread::Builder::new()
                .name("windows".into())
                .spawn(move || {
                    let (mut due, mut waiting) = (None, false);
                    loop {
                        let period = if waiting { SAVE_SPACING } else { TIMER_PERIOD };
                        let wait = due.map_or(period, |d: Timestamp| {
                            let ns = d.as_nanos().saturating_sub(Timestamp::now().as_nanos());
                            Duration::from_nanos(u64::try_from(ns).unwrap_or(0)).min(period)
                        });
                        match stopped.recv_timeout(wait) {
                            Err(RecvTimeoutError::Timeout) => (due, waiting) = handle.tick(),
                            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                })
                .map_err(EscalateError::Spawn)?
        };
        Ok(Running {
            handle,
            stop_timer,
            timer,
            notifier,
        })
    }

    pub fn handle(&self) -> WindowsHandle {
        self.handle.clone()
    }

    /// Stops the timer, saves the windows and lets the notifier finish what it was given.
    pub fn stop(self) {
        let _ = self.stop_timer.send(());
        let _ = self.timer.join();
        self.handle.release_held();
        if let Err(e) = self.handle.save() {
            tracing::error!(error = %e, "cannot save window state at shutdown; groups may be notified again after the restart");
        }
        // After everything decided so far: the channel keeps order.
        let _ = self.handle.tx.send(ToNotifier::Stop);
        let _ = self.notifier.join();
    }
}
