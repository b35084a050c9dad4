//! The status board: what the status page and `/api/v1` show, published by the stages that
//! own the data, so that a request reads a snapshot and never takes a pipeline lock.
//!
//! Owns: the published views (the busiest groups with their per-minute history, each
//! source's files), their caps ([`MAX_LISTED`], [`MAX_FILES_LISTED`]), and [`Publisher`], which
//! turns the windows into a [`FingerprintsView`] on the windows' timer thread at most every
//! [`PUBLISH_EVERY`]. Must not: lock the windows itself or scan any state on a request, do
//! I/O, or render (that is `http`'s). Recent escalations are `notify::recent`'s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::escalation::{Kind, Sample};
use crate::event::{Fingerprint, Level, Timestamp};
use crate::metrics::SourceMetrics;
use crate::notify::recent::RecentEscalations;
use crate::window::{GroupView, Windows};

/// The most groups the page and `/api/v1/fingerprints` list (the busiest ones).
pub const MAX_LISTED: usize = 100;
/// The most files listed per source (those furthest behind first).
pub const MAX_FILES_LISTED: usize = 100;
/// How often the windows' timer thread publishes the groups (each time one pass over the
/// live groups, under the windows' lock it already holds for its timers).
pub const PUBLISH_EVERY: Duration = Duration::from_secs(2);
/// The per-minute history of a listed group: the last hour.
pub const SPARK_MINUTES: usize = 60;
/// Template, message and error texts are cut here for the page.
pub const MAX_TEXT: usize = 512;

/// Everything the HTTP endpoint reads. Shared by `Arc`; each part is replaced whole by its
/// publisher (`ArcSwap`) or appended to under a lock no pipeline stage waits on.
#[derive(Default)]
pub struct Board {
    fingerprints: ArcSwap<FingerprintsView>,
    /// Registered once per source at start-up.
    sources: Mutex<Vec<SourceStatus>>,
    /// Set once delivery runs (never when there are no routes).
    escalations: OnceLock<Arc<RecentEscalations>>,
}

impl Board {
    pub fn new() -> Arc<Board> {
        Arc::default()
    }

    /// Registers a source; its thread publishes through the returned handle.
    pub fn add_source(
        &self,
        name: Arc<str>,
        kind: &'static str,
        metrics: SourceMetrics,
    ) -> SourceStatus {
        let status = SourceStatus(Arc::new(SourceInner {
            name,
            kind,
            metrics,
            files: ArcSwap::default(),
        }));
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(status.clone());
        status
    }

    pub fn set_escalations(&self, recent: Arc<RecentEscalations>) {
        let _ = self.escalations.set(recent);
    }

    pub fn fingerprints(&self) -> Arc<FingerprintsView> {
        self.fingerprints.load_full()
    }

    pub fn sources(&self) -> Vec<SourceView> {
        let sources = self
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        sources.iter().map(SourceStatus::view).collect()
    }

    pub fn escalations(&self) -> Option<&Arc<RecentEscalations>> {
        self.escalations.get()
    }
}

/// The listed groups as last published.
#[derive(Debug, Default, Serialize)]
pub struct FingerprintsView {
    /// When it was published; `None` before the first time (or with no routes).
    pub published_at: Option<Timestamp>,
    /// Live groups over every route, listed or not.
    pub groups_live: usize,
    pub fingerprints: Vec<FingerprintRow>,
}

/// One group of one route, with what it looks like and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct FingerprintRow {
    pub route: Arc<str>,
    /// The `group_by` values.
    pub group: Map<String, Value>,
    pub fingerprint: Option<Fingerprint>,
    pub template: Option<String>,
    pub message: Option<String>,
    pub level: Option<Level>,
    pub service: Option<String>,
    pub ci_run_id: Option<String>,
    pub pattern: Option<Arc<str>>,
    pub source: Arc<str>,
    pub path: Option<Arc<str>>,
    /// Events in the open window (0 when it has closed).
    pub count: u64,
    pub window_open: bool,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Events per minute over the last hour, oldest first, the current minute last. Counted
    /// from when the group was first listed by this process.
    pub per_minute: Vec<u32>,
    /// The group's last notification, if any.
    pub escalated: Option<Escalated>,
    /// Events not carried by any escalation yet (they ride with the next one).
    pub suppressed: u64,
    /// A first notification held by `group_wait` until then.
    pub held_until: Option<Timestamp>,
    /// The id of an active silence that covers the group's events.
    pub silenced_by: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Escalated {
    pub at: Timestamp,
    pub kind: Kind,
}

/// A handle on one source's published state.
#[derive(Clone)]
pub struct SourceStatus(Arc<SourceInner>);

struct SourceInner {
    name: Arc<str>,
    kind: &'static str,
    metrics: SourceMetrics,
    files: ArcSwap<FilesView>,
}

/// What a file tailer publishes about its files.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FilesView {
    /// Files followed, listed or not.
    pub tracked: usize,
    /// Bytes written to them and not delivered yet.
    pub lag_bytes: u64,
    /// The furthest behind first, at most [`MAX_FILES_LISTED`].
    pub files: Vec<FileRow>,
    /// The last problem finding or opening files.
    pub last_error: Option<Note>,
}

/// One file (or stream) of a source.
#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    pub path: String,
    /// Bytes delivered and acknowledged: where reading resumes after a restart.
    pub position: u64,
    /// Size at the tailer's last look; `None` for a pipe.
    pub size: Option<u64>,
    pub lag_bytes: Option<u64>,
    /// How long the position has been short of the size (0 when caught up).
    pub lag_seconds: Option<u64>,
    /// Renamed away or deleted, read to its end before it is let go.
    pub rotated: bool,
    pub last_error: Option<Note>,
}

/// A problem and when it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub at: Timestamp,
    pub message: String,
}

impl Note {
    pub fn now(message: impl std::fmt::Display) -> Note {
        Note {
            at: Timestamp::now(),
            message: cut(&message.to_string()),
        }
    }
}

/// A source as `/api/v1/sources` shows it.
#[derive(Debug, Serialize)]
pub struct SourceView {
    pub name: Arc<str>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub lines_read: u64,
    pub bytes_read: u64,
    pub events: u64,
    pub rotations: u64,
    pub truncations: u64,
    #[serde(flatten)]
    pub files: FilesView,
}

impl SourceStatus {
    /// Replaces what the page shows of this source's files.
    pub fn publish(&self, files: FilesView) {
        self.0.files.store(Arc::new(files));
    }

    fn view(&self) -> SourceView {
        let s = &self.0;
        let m = &s.metrics;
        let mut files = FilesView::clone(&s.files.load());
        if s.kind == "stdin" {
            // A pipe has no size: its position is what was read.
            files.tracked = 1;
            files.files = vec![FileRow {
                path: "-".into(),
                position: m.bytes_read.get(),
                size: None,
                lag_bytes: None,
                lag_seconds: None,
                rotated: false,
                last_error: None,
            }];
        }
        SourceView {
            name: s.name.clone(),
            kind: s.kind,
            lines_read: m.lines_read.get(),
            bytes_read: m.bytes_read.get(),
            events: m.events.get(),
            rotations: m.rotations.get(),
            truncations: m.truncations.get(),
            files,
        }
    }
}

/// Builds [`FingerprintsView`]s from the windows, and keeps the per-minute history of the
/// listed groups. Lives on the windows' timer thread, next to the windows.
pub struct Publisher {
    board: Arc<Board>,
    /// Per listed group (route, key hash): only the last publication's [`MAX_LISTED`].
    sparks: HashMap<(Arc<str>, u64), Spark>,
    last: Option<Timestamp>,
}

impl Publisher {
    pub fn new(board: Arc<Board>) -> Publisher {
        Publisher {
            board,
            sparks: HashMap::new(),
            last: None,
        }
    }

    /// Whether [`PUBLISH_EVERY`] has passed since the last publication.
    pub fn due(&self, now: Timestamp) -> bool {
        self.last.is_none_or(|t| {
            now.as_nanos().saturating_sub(t.as_nanos()) >= PUBLISH_EVERY.as_nanos() as i64
        })
    }

    /// Publishes the busiest groups at `now`; `silenced` names the active silence covering
    /// a group's sample, if any.
    pub fn publish(
        &mut self,
        windows: &Windows,
        silenced: impl Fn(&Sample) -> Option<String>,
        now: Timestamp,
    ) {
        let minute = now.as_nanos().div_euclid(60_000_000_000);
        let mut sparks = HashMap::with_capacity(MAX_LISTED);
        let rows = windows
            .top(MAX_LISTED)
            .into_iter()
            .map(|g| {
                let key = (g.route.clone(), g.id);
                let mut spark = self.sparks.remove(&key).unwrap_or_else(|| {
                    // New to the list: the events of a window opened since the last look
                    // count now, none from before.
                    let recent = self.last.is_none_or(|t| g.window_start > t);
                    let new = if recent { g.seen.min(g.count) } else { 0 };
                    Spark::new(g.seen - new)
                });
                spark.look(minute, g.seen);
                let row = row(&g, &spark, minute, now, &silenced);
                sparks.insert(key, spark);
                row
            })
            .collect::<Vec<_>>();
        self.sparks = sparks;
        self.last = Some(now);
        self.board.fingerprints.store(Arc::new(FingerprintsView {
            published_at: Some(now),
            groups_live: windows.active_groups(),
            fingerprints: rows,
        }));
    }
}

fn row(
    g: &GroupView<'_>,
    spark: &Spark,
    minute: i64,
    now: Timestamp,
    silenced: &impl Fn(&Sample) -> Option<String>,
) -> FingerprintRow {
    let s = g.sample;
    let text = |t: &Option<String>| t.as_deref().map(cut);
    FingerprintRow {
        route: g.route.clone(),
        group: g.group.clone(),
        fingerprint: s.fingerprint,
        template: text(&s.template),
        message: text(&s.message),
        level: s.level,
        service: s.service.clone(),
        ci_run_id: s.ci_run_id.clone(),
        pattern: s.pattern.clone(),
        source: s.source.clone(),
        path: s.path.clone(),
        count: g.count,
        window_open: g.window_open,
        first_seen: g.first_seen,
        last_seen: g.last_seen,
        per_minute: spark.series(minute),
        escalated: g
            .last_notified
            .zip(g.last_kind)
            .map(|(at, kind)| Escalated { at, kind }),
        suppressed: g.unreported,
        held_until: g.held_until.filter(|t| *t > now),
        silenced_by: silenced(s),
    }
}

/// Events per minute of one group over the last [`SPARK_MINUTES`], a ring indexed by minute.
#[derive(Debug, Clone, Copy)]
struct Spark {
    buckets: [u32; SPARK_MINUTES],
    /// The minute of the newest bucket.
    minute: i64,
    /// The group's `seen` already counted into the buckets.
    counted: u64,
}

impl Spark {
    fn new(counted: u64) -> Spark {
        Spark {
            buckets: [0; SPARK_MINUTES],
            minute: i64::MIN,
            counted,
        }
    }

    /// Puts what the group saw since the last look (`seen` now) into `minute`.
    fn look(&mut self, minute: i64, seen: u64) {
        // Fewer than counted: the group was dropped and made again under the same key.
        let new = seen.checked_sub(self.counted).unwrap_or(seen);
        self.counted = seen;
        if minute > self.minute {
            let gap = minute.saturating_sub(self.minute).min(SPARK_MINUTES as i64);
            for m in (minute - gap + 1)..=minute {
                self.buckets[slot(m)] = 0;
            }
            self.minute = minute;
        }
        let b = &mut self.buckets[slot(self.minute)];
        *b = b.saturating_add(u32::try_from(new).unwrap_or(u32::MAX));
    }

    /// Oldest first, ending with `minute`.
    fn series(&self, minute: i64) -> Vec<u32> {
        let span = SPARK_MINUTES as i64;
        (minute - span + 1..=minute)
            .map(|m| {
                if m > self.minute || m <= self.minute.saturating_sub(span) {
                    0
                } else {
                    self.buckets[slot(m)]
                }
            })
            .collect()
    }
}

fn slot(minute: i64) -> usize {
    minute.rem_euclid(SPARK_MINUTES as i64) as usize
}

/// `text` cut at [`MAX_TEXT`] bytes (at a character boundary), with `…` when cut.
pub fn cut(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_string();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escalation::Escalation;
    use crate::route::tests::event;
    use crate::route::{Matcher, Route};

    fn minute(m: i64, s: i64) -> Timestamp {
        Timestamp::from_nanos((1_700_000_040 + m * 60 + s) * 1_000_000_000)
    }

    fn error(fp: u64) -> crate::event::Event {
        let mut ev = event("ERROR db timeout");
        ev.level = Some(Level::Error);
        ev.fingerprint = Some(Fingerprint(fp));
        ev.template = Some("db timeout after <num>s".into());
        ev
    }

    #[test]
    fn listed_groups_get_their_events_per_minute_and_their_silence() {
        let board = Board::new();
        let mut p = Publisher::new(board.clone());
        let routes: Arc<[Route]> = vec![Route::new("errors", Matcher::default(), vec![])].into();
        let mut w = Windows::new(routes);
        let mut out: Vec<Escalation> = Vec::new();
        let mut observe = |w: &mut Windows, fp, t| w.observe(0, &error(fp), &[], t, None, &mut out);
        for s in 0..3 {
            observe(&mut w, 1, minute(0, s));
        }
        let silenced = |s: &Sample| (s.fingerprint == Some(Fingerprint(2))).then(|| "abc".into());
        p.publish(&w, silenced, minute(0, 5));
        for s in 0..4 {
            observe(&mut w, 1, minute(2, s));
        }
        observe(&mut w, 2, minute(2, 10));
        assert!(!p.due(minute(0, 6)), "not before PUBLISH_EVERY");
        assert!(p.due(minute(2, 20)));
        p.publish(&w, silenced, minute(2, 20));
        let view = board.fingerprints();
        let rows = &view.fingerprints;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].count, 7);
        assert_eq!(rows[0].template.as_deref(), Some("db timeout after <num>s"));
        assert_eq!(rows[0].per_minute.len(), SPARK_MINUTES);
        assert_eq!(
            rows[0].per_minute[57..],
            [3, 0, 4],
            "two minutes ago, then now"
        );
        assert_eq!(rows[0].silenced_by, None);
        assert_eq!(rows[1].per_minute[59], 1);
        assert_eq!(rows[1].silenced_by.as_deref(), Some("abc"));
        assert_eq!(view.groups_live, 2);
    }
}
