//! Wiring, and only wiring: starts the sources, the delivery thread, the
//! checkpointer and the HTTP endpoint, and drains them in order at shutdown.
//!
//! Shutdown order: sources stop reading; the channel closes once the last
//! in-flight batch is sent; delivery writes and acknowledges what it has;
//! positions are written last. What is not acknowledged by then keeps its old
//! position and is read again at the next start: replayed, never lost.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

use crate::config::{Config, SourceKind};
use crate::escalate::{EscalateError, WindowsHandle};
use crate::escalation::Escalation;
use crate::fingerprint::{Fingerprinter, MinerConfig};
use crate::http::{self, Health};
use crate::metrics::Metrics;
use crate::metrics::{NotifyMetrics, TemplateMetrics};
use crate::notify::outbox::{Outbox, OutboxError};
use crate::notify::worker::Delivery;
use crate::notify::{DefaultClock, NotifyError, Receivers};
use crate::reload::SharedPatterns;
use crate::ship::file::{FileOutput, FileOutputError};
use crate::ship::loki::LokiOutput;
use crate::ship::{Output, Outputs, Receipt};
use crate::source::file::{Tailer, Wake};
use crate::source::{Batch, SourceCtx, StreamConfig, stdin};
use crate::state::{Positions, StateError, TemplateState};
use crate::status::Board;

/// Batches in flight between sources and delivery: with batches of at most
/// 1024 events or 512 KiB, this bounds the pipeline's memory.
const CHANNEL_BATCHES: usize = 16;
/// At shutdown, outputs may take this share of `shutdown_timeout` to deliver what they hold
/// (a Loki output's pushes); the rest is for saving state.
const DRAIN_SHARE: f64 = 0.75;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Output(#[from] FileOutputError),
    #[error("cannot listen on {addr}: {source} — pick a free port for [http] listen")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Spawn(std::io::Error),
    #[error(transparent)]
    Escalate(#[from] EscalateError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(
        "shutdown did not finish within shutdown_timeout ({0:?}); undelivered lines keep their old positions and are read again at the next start"
    )]
    DrainTimeout(Duration),
}

/// Runs the agent until `shutdown` resolves or every source has ended (stdin at EOF).
pub async fn run(
    config: Config,
    patterns: SharedPatterns,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let metrics = Metrics::new();
    let health = Arc::new(Health {
        ready: AtomicBool::new(false),
        metrics: metrics.clone(),
    });
    let board = Board::new();
    let positions = Positions::open(&config.state_dir)?;
    let file_output = config
        .output_file
        .as_ref()
        .map(|o| FileOutput::open(&o.path, metrics.output("file")))
        .transpose()?;
    let output_sync = file_output
        .as_ref()
        .map(FileOutput::sync_handle)
        .transpose()?;
    let mut outputs: Vec<Box<dyn Output>> = Vec::new();
    outputs.extend(file_output.map(|o| Box::new(o) as Box<dyn Output>));
    if let Some(loki) = &config.loki {
        let output = LokiOutput::start(loki, metrics.loki()).map_err(RunError::Spawn)?;
        outputs.push(Box::new(output));
    }
    let outputs = Outputs::new(config.ship, outputs);
    let (stop_http, http_stopped) = watch::channel(false);
    let http_task = match &config.http {
        Some(h) => {
            let listener = http::bind(h.listen)
                .await
                .map_err(|source| RunError::Listen {
                    addr: h.listen,
                    source,
                })?;
            tracing::info!(listen = %h.listen, "serving the status page, /api/v1, /health, /ready and /metrics");
            let mut stopped = http_stopped.clone();
            Some(tokio::spawn(http::serve(
                listener,
                http::Endpoint::new(health.clone(), board.clone(), &config, h),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            )))
        }
        None => None,
    };

    let hup = crate::reload::hangup();
    let (tx, rx) = mpsc::channel::<Batch>(CHANNEL_BATCHES);
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let pending_ready = Arc::new(AtomicUsize::new(config.sources.len()));
    let mark_ready = {
        let health = health.clone();
        let pending = pending_ready.clone();
        let positions = positions.clone();
        move || {
            if pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                // Record at once that the sources have started, so a crash in the
                // first checkpoint interval does not apply `start_at` a second time.
                if let Err(e) = positions.persist() {
                    tracing::error!(error = %e, "cannot write positions");
                }
                set_ready(&health);
                tracing::info!("ready: every source is open");
            }
        }
    };
    if config.sources.is_empty() {
        set_ready(&health);
    }
    let watchdog = crate::service::watchdog_interval()
        .map(|every| tokio::spawn(crate::service::watchdog(every, http_stopped.clone())));
    let templates = Arc::new(TemplateState::open(
        &config.state_dir,
        MinerConfig::default(),
    ));
    let fingerprinter = Fingerprinter::new(Some(templates.miner().clone()));
    let context_lines = config
        .routes
        .iter()
        .map(|r| r.context_lines)
        .max()
        .unwrap_or(0);
    let (escalation, delivery_threads) = match config.routes.is_empty() {
        true => (None, None),
        false => {
            metrics
                .notify()
                .init(&config.routes, config.receivers.keys().map(String::as_str));
            let (delivery, windows) = start_delivery(&config, metrics.notify())?;
            board.set_escalations(delivery.recent());
            let running = crate::escalate::Running::start(
                config.routes.clone(),
                &config.state_dir,
                metrics.notify(),
                config.loki_query_labels(),
                board.clone(),
                {
                    let delivery = delivery.clone();
                    move |burst: &[Escalation]| delivery.submit_all(burst)
                },
            )?;
            let _ = windows.set(running.handle());
            (Some(running), Some(delivery))
        }
    };
    let mut wakers = Vec::new();
    for source in &config.sources {
        let ctx = SourceCtx {
            name: source.name.clone(),
            source: Arc::new(source.clone()),
            stream: StreamConfig {
                context_lines,
                ..source.stream_config()
            },
            tx: tx.downgrade(),
            positions: positions.clone(),
            metrics: metrics.source(&source.name),
            status: board.add_source(
                source.name.clone(),
                source.kind.type_name(),
                metrics.source(&source.name),
            ),
            stop: stop.clone(),
            patterns: patterns.clone(),
            routes: config.routes.clone(),
            fingerprinter: fingerprinter.clone(),
        };
        let done = done_tx.clone();
        let ready = mark_ready.clone();
        let builder = thread::Builder::new().name(format!("source:{}", source.name));
        let spawned = match &source.kind {
            SourceKind::File(cfg) => {
                let (waker, wake) = std::sync::mpsc::channel();
                wakers.push(waker.clone());
                let tailer = Tailer::new(ctx, cfg.clone(), waker, wake);
                builder.spawn(move || {
                    tailer.run(ready);
                    let _ = done.send(());
                })
            }
            SourceKind::Stdin => builder.spawn(move || {
                ready();
                stdin::run(ctx);
                let _ = done.send(());
            }),
        };
        spawned.map_err(RunError::Spawn)?;
    }
    drop(done_tx);

    let delivery = {
        let positions = positions.clone();
        let windows = escalation.as_ref().map(crate::escalate::Running::handle);
        let runtime = Handle::current();
        let drain = config.shutdown_timeout.mul_f64(DRAIN_SHARE);
        thread::Builder::new()
            .name("delivery".into())
            .spawn(move || deliver(rx, outputs, windows, &positions, &runtime, drain))
            .map_err(RunError::Spawn)?
    };
    let checkpointer = tokio::spawn(checkpoint_loop(
        positions.clone(),
        config.checkpoint_interval,
        output_sync,
        escalation.as_ref().map(crate::escalate::Running::handle),
        templates.clone(),
        metrics.templates(),
    ));
    let reloader = tokio::spawn(crate::reload::run(
        config.clone(),
        patterns,
        metrics.clone(),
        http_stopped.clone(),
        hup,
    ));

    let mut running = config.sources.len();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                crate::service::stopping();
                tracing::info!("stopping: draining what was read");
                break;
            }
            // With no source at all there is nothing to end: run until told to stop.
            d = done_rx.recv(), if running > 0 => {
                running = running.saturating_sub(1);
                if d.is_none() || running == 0 {
                    crate::service::stopping();
                    tracing::info!("every source has ended; draining");
                    break;
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in &wakers {
        let _ = w.send(Wake::Stop);
    }
    drop(tx);
    let drained = tokio::time::timeout(
        config.shutdown_timeout,
        tokio::task::spawn_blocking(move || delivery.join()),
    )
    .await;
    checkpointer.abort();
    if let Some(e) = escalation {
        let _ = tokio::task::spawn_blocking(move || e.stop()).await;
    }
    // After the windows handed out their last escalations: what is unsent stays in the outbox.
    if let Some(d) = delivery_threads {
        let _ = tokio::task::spawn_blocking(move || d.stop()).await;
    }
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || templates.save()).await {
        tracing::error!(error = %e, "cannot save the template miner at shutdown");
    }
    let saved = tokio::task::spawn_blocking(move || positions.persist()).await;
    if let Ok(Err(e)) = saved {
        tracing::error!(error = %e, "cannot write positions at shutdown; lines since the last checkpoint will be read again");
    }
    let _ = stop_http.send(true);
    if let Some(t) = http_task {
        let _ = t.await;
    }
    let _ = reloader.await;
    if let Some(w) = watchdog {
        let _ = w.await;
    }
    match drained {
        Ok(_) => Ok(()),
        Err(_) => Err(RunError::DrainTimeout(config.shutdown_timeout)),
    }
}

/// `/ready` turns true, and the service manager hears it (`READY=1`).
fn set_ready(health: &Health) {
    health.ready.store(true, Ordering::Release);
    crate::service::ready();
}

/// Opens the receivers and the outbox and starts one delivery thread per receiver, with
/// what a previous run left in the outbox first. What a receiver refuses over its rate goes
/// back to the windows, whose handle is set once they run.
fn start_delivery(
    config: &Config,
    metrics: NotifyMetrics,
) -> Result<(Arc<Delivery>, Arc<OnceLock<WindowsHandle>>), RunError> {
    let receivers = Receivers::new(&config.receivers, DefaultClock::default())?;
    let (outbox, left) = Outbox::open(&config.state_dir)?;
    if !left.is_empty() {
        tracing::info!(
            items = left.len(),
            "the outbox holds escalations from the previous run; sending them"
        );
    }
    let windows = Arc::new(OnceLock::<WindowsHandle>::new());
    let refused = {
        let windows = windows.clone();
        Arc::new(move |esc: &Escalation| match windows.get() {
            Some(w) => w.fold(esc),
            None => {
                tracing::warn!(receiver = %esc.receiver, route = %esc.route, "an escalation over the rate came before the windows were running; its count is dropped")
            }
        })
    };
    let delivery = Delivery::start(
        Arc::new(outbox),
        left,
        receivers.into_lanes(),
        metrics,
        refused,
    )
    .map_err(RunError::Spawn)?;
    Ok((Arc::new(delivery), windows))
}

/// Lets the windows observe each batch's routed events, then hands the events to the
/// outputs; the batch is acknowledged once every output accepted its share. Ends when the
/// channel closes, after the outputs drained for at most `drain`.
fn deliver(
    mut rx: mpsc::Receiver<Batch>,
    mut outputs: Outputs,
    windows: Option<WindowsHandle>,
    positions: &Positions,
    runtime: &Handle,
    drain: Duration,
) {
    loop {
        let now = Instant::now();
        // Before taking more: under a steady flow, a wait for the next batch never times out.
        if outputs.due().is_some_and(|d| d <= now) {
            outputs.tick(now);
        }
        let batch = match next_batch(&mut rx, outputs.due(), runtime) {
            Next::Batch(b) => b,
            Next::Due => continue,
            Next::Closed => break,
        };
        if let Some(w) = &windows {
            // Before the acknowledgement: a position saved past an event means the windows
            // have counted it (their state is saved first).
            w.observe(&batch.events);
        }
        let receipt = match batch.checkpoint {
            Some(cp) => {
                let positions = positions.clone();
                Receipt::new(move || positions.ack(&cp))
            }
            None => Receipt::new(|| {}),
        };
        outputs.send(batch.events, &receipt);
        receipt.accept();
    }
    outputs.finish(Instant::now() + drain);
}

enum Next {
    Batch(Batch),
    /// An output's timer came first.
    Due,
    Closed,
}

/// The next batch, waiting no later than `due`.
fn next_batch(rx: &mut mpsc::Receiver<Batch>, due: Option<Instant>, runtime: &Handle) -> Next {
    let Some(due) = due else {
        return rx.blocking_recv().map_or(Next::Closed, Next::Batch);
    };
    runtime.block_on(async {
        match tokio::time::timeout_at(due.into(), rx.recv()).await {
            Ok(Some(b)) => Next::Batch(b),
            Ok(None) => Next::Closed,
            Err(_) => Next::Due,
        }
    })
}

/// Saves positions every interval, syncing the output and saving the window
/// state first so that a saved position never runs ahead of what is on disk
/// (power loss, not just `kill -9`).
async fn checkpoint_loop(
    positions: Positions,
    every: Duration,
    output: Option<Arc<std::fs::File>>,
    windows: Option<WindowsHandle>,
    templates: Arc<TemplateState>,
    template_metrics: TemplateMetrics,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let p = positions.clone();
        let out = output.clone();
        let w = windows.clone();
        let t = templates.clone();
        let saved = tokio::task::spawn_blocking(move || {
            p.persist_after(|| {
                out.as_ref().map_or(Ok(()), |f| f.sync_data())?;
                w.as_ref().map_or(Ok(()), WindowsHandle::save)?;
                t.save()
            })
        });
        if let Ok(Err(e)) = saved.await {
            tracing::error!(error = %e, "cannot write positions; will retry");
        }
        let (live, evicted) = templates.stats();
        template_metrics.update(live, evicted);
    }
}
