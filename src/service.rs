//! The service manager's side of the agent's life (systemd `Type=notify`): tells it when the
//! agent is ready, reloading or stopping, and pings its watchdog while the runtime is alive.
//!
//! Every call is a no-op without `$NOTIFY_SOCKET` (not under systemd), and a failed
//! notification is logged, never an error of the agent: it must not stop the pipeline or
//! decide anything about it. It knows nothing of sources or state; `pipeline` and `reload`
//! call it at the moments that matter.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

/// Whether [`ready`] was said: a reload before it must not end in `READY=1`.
static READY: AtomicBool = AtomicBool::new(false);

/// Every source is open and the saved state is loaded: what `/ready` reports.
pub fn ready() {
    READY.store(true, Ordering::Release);
    send(&[
        NotifyState::Ready,
        NotifyState::Status("ready: every source is open"),
    ]);
}

/// A reload begins; [`reloaded`] ends it. `MONOTONIC_USEC` is what `Type=notify-reload`
/// (systemd 253) asks for; older managers ignore it. Before [`ready`], the agent is still
/// starting, and says nothing of reloads.
pub fn reloading() {
    if !READY.load(Ordering::Acquire) {
        return;
    }
    let mut states = vec![NotifyState::Reloading];
    states.extend(NotifyState::monotonic_usec_now().ok());
    send(&states);
}

/// The reload is over, whatever its result: the agent runs on either set of patterns.
pub fn reloaded() {
    if READY.load(Ordering::Acquire) {
        ready();
    }
}

/// Draining has begun: sources stop, what was read is delivered, positions are saved.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: draining what was read"),
    ]);
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC` (systemd's own advice), or
/// `None` when no watchdog is set for this process.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}

/// Pings the watchdog every `every` until `stop` turns true. It runs on the agent's runtime,
/// so a runtime that stops making progress stops the pings, and systemd restarts the agent.
pub async fn watchdog(every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
            _ = tick.tick() => send(&[NotifyState::Watchdog]),
        }
    }
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager ($NOTIFY_SOCKET)");
    }
}
