//! Hot reload of the config's pattern set: on SIGHUP, and when the config
//! file or a loaded pattern file changes (debounced).
//!
//! The whole new set is parsed and validated off the hot path; only a valid
//! set is swapped in, atomically, and sources pick it up at their next batch,
//! so no line is lost or processed twice across the swap. An invalid set
//! leaves the running one in place. Changes that cannot apply live (state_dir,
//! sources, outputs, http) are reported as needing a restart.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::pattern::PatternSet;

/// The pattern set every source reads, swapped whole on reload.
pub type SharedPatterns = Arc<ArcSwap<PatternSet>>;

/// Edits come as bursts of events (an editor writes, renames, chmods): reload once per burst.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Loads the patterns a config names.
pub fn load_patterns(config: &Config) -> Result<PatternSet, crate::config::Diagnostics> {
    PatternSet::load(&config.patterns)
}

/// Installs the SIGHUP handler. Call it before any source opens: from then on a SIGHUP reloads
/// and never ends the process (its default action), even while the agent is still starting,
/// and `systemctl reload` may come as soon as the agent said it is ready.
pub fn hangup() -> Option<Signal> {
    signal(SignalKind::hangup())
        .map_err(
            |e| tracing::warn!(error = %e, "cannot handle SIGHUP; reload on file changes only"),
        )
        .ok()
}

/// Reloads on `hup` and on file changes until `stop` turns true.
pub async fn run(
    running: Config,
    patterns: SharedPatterns,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    mut hup: Option<Signal>,
) {
    let (tx, mut changed) = mpsc::unbounded_channel::<()>();
    // Kept for its lifetime: dropping the watcher ends the watch.
    let mut _watcher = watch_files(&running, &patterns.load(), tx.clone());
    loop {
        tokio::select! {
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
            () = hangup_received(&mut hup) => tracing::info!("SIGHUP: reloading patterns"),
            Some(()) = changed.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while changed.try_recv().is_ok() {}
                tracing::info!("config or pattern file changed: reloading patterns");
            }
        }
        crate::service::reloading();
        let path = running.path.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            Config::load(&path).and_then(|c| load_patterns(&c).map(|p| (c, p)))
        })
        .await;
        match loaded {
            Ok(Ok((config, set))) => {
                for what in running.restart_needed(&config) {
                    tracing::warn!(
                        changed = what,
                        "this change takes effect at the next restart"
                    );
                }
                tracing::info!(
                    patterns = set.len(),
                    "reload succeeded; new pattern set in use"
                );
                patterns.store(Arc::new(set));
                metrics.reload(true);
                _watcher = watch_files(&config, &patterns.load(), tx.clone());
            }
            Ok(Err(diagnostics)) => {
                for d in &diagnostics.0 {
                    tracing::error!(problem = %d, "reload failed; the previous pattern set stays in use");
                }
                metrics.reload(false);
            }
            Err(e) => {
                tracing::error!(error = %e, "reload failed; the previous pattern set stays in use");
                metrics.reload(false);
            }
        }
        crate::service::reloaded();
    }
}

/// Resolves at the next SIGHUP; never without a handler.
async fn hangup_received(hup: &mut Option<Signal>) {
    let received = match hup {
        Some(h) => h.recv().await.is_some(),
        None => false,
    };
    if !received {
        std::future::pending::<()>().await;
    }
}

/// Watches the directories holding the config and the pattern files, and
/// reports changes to those files only.
fn watch_files(
    config: &Config,
    set: &PatternSet,
    tx: mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    // The bundled library lives in the binary: nothing on disk to watch.
    let mut files: HashSet<PathBuf> = set
        .files()
        .iter()
        .filter(|f| !f.starts_with(crate::pattern::BUNDLED))
        .filter_map(|f| absolute(f))
        .collect();
    files.extend(absolute(&config.path));
    let dirs: HashSet<PathBuf> = config
        .patterns
        .iter()
        .filter_map(|p| absolute(p))
        .filter(|p| p.is_dir())
        .chain(
            files
                .iter()
                .filter_map(|f| f.parent().map(Path::to_path_buf)),
        )
        .collect();
    let pattern_dirs: HashSet<PathBuf> = config
        .patterns
        .iter()
        .filter_map(|p| absolute(p))
        .filter(|p| p.is_dir())
        .collect();
    let handler = move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            files.contains(p)
                || (p.extension().is_some_and(|x| x == "toml")
                    && p.parent().is_some_and(|d| pattern_dirs.contains(d)))
        });
        if relevant {
            let _ = tx.send(());
        }
    };
    let mut watcher = notify::recommended_watcher(handler)
        .map_err(|e| tracing::warn!(error = %e, "cannot watch pattern files; reload with SIGHUP"))
        .ok()?;
    for d in dirs {
        if let Err(e) = watcher.watch(&d, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory; reload with SIGHUP");
        }
    }
    Some(watcher)
}

fn absolute(p: &Path) -> Option<PathBuf> {
    if p.as_os_str() == crate::pattern::BUNDLED {
        return None;
    }
    std::path::absolute(p).ok()
}
