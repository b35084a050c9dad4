//! The file tailer: finds files by glob, follows them through rotation,
//! truncation and restarts, and reads each from its delivered position.
//!
//! One thread per `file` source. Discovery is a glob scan, woken by watch
//! events on the globs' directories and repeated every `rescan_interval` as a
//! safety net. At most `max_open_files` descriptors are held: the file idle the
//! longest is closed and reopened at its position when it grows. This module
//! must not acknowledge anything: positions move when outputs deliver.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use super::identity::{FileKey, Head, birth_time};
use super::{Batch, BatchBuilder, SourceCtx, StreamReader};
use crate::config::{FileSource, StartAt};
use crate::correlate::Sticky;
use crate::event::Origin;
use crate::state::{Checkpoint, SavedFile};
use crate::status::{FileRow, FilesView, MAX_FILES_LISTED, Note};

/// How much one file may read in one turn before others get theirs.
const TURN_BYTES: usize = 8 << 20;
/// Watch events come in bursts (a rotation is a rename and a create): scan once per burst.
const RESCAN_DEBOUNCE: Duration = Duration::from_millis(50);
/// How often the position-lag gauge is recomputed and the files published for the status page.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// What wakes the tailer between polls.
#[derive(Debug)]
pub enum Wake {
    /// Something was created, renamed or removed: scan the globs.
    Rescan,
    /// A file was written to.
    Written(PathBuf),
    /// The agent is stopping.
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// At its path, still written to.
    Live,
    /// Renamed away or deleted: read to its end, then let go after `rotate_wait`.
    Gone { since: Instant },
}

struct Tailed {
    key: FileKey,
    path: PathBuf,
    origin: Origin,
    file: Option<File>,
    stream: StreamReader,
    head: Head,
    generation: u32,
    life: Life,
    /// Size at the last look, to notice growth of closed files.
    size: u64,
    last_read: Instant,
    /// Set when the file may have grown and is not held open.
    dirty: bool,
    /// The last turn ended before EOF: read on without waiting for a poll.
    more: bool,
    /// Since when the delivered position has been short of the size (status page).
    behind_since: Option<Instant>,
    last_error: Option<Note>,
}

pub struct Tailer {
    ctx: SourceCtx,
    cfg: FileSource,
    files: HashMap<FileKey, Tailed>,
    open: usize,
    wake: Receiver<Wake>,
    /// Kept alive for the source's lifetime; dropping it stops the watch.
    _watcher: Option<notify::RecommendedWatcher>,
    written: HashSet<PathBuf>,
    rescan_at: Instant,
    next_poll: Instant,
    next_gauges: Instant,
    /// The last file that could not be opened or read at discovery (status page).
    last_error: Option<Note>,
}

impl Tailer {
    /// A tailer woken through `wake` (the caller keeps `waker` to send `Wake::Stop`).
    pub fn new(
        ctx: SourceCtx,
        cfg: FileSource,
        waker: Sender<Wake>,
        wake: Receiver<Wake>,
    ) -> Tailer {
        let watcher = watch(&cfg.paths, waker);
        let now = Instant::now();
        Tailer {
            ctx,
            cfg,
            files: HashMap::new(),
            open: 0,
            wake,
            _watcher: watcher,
            written: HashSet::new(),
            rescan_at: now,
            next_poll: now,
            next_gauges: now,
            last_error: None,
        }
    }

    /// Runs until told to stop. `ready` is called once the first scan is done.
    pub fn run(mut self, ready: impl FnOnce()) {
        let first_start = !self.ctx.positions.source_started_before(&self.ctx.name);
        self.scan(first_start);
        self.ctx.positions.first_scan_done(&self.ctx.name);
        ready();
        while !self.ctx.stopping() {
            let now = Instant::now();
            if now >= self.rescan_at {
                self.scan(false);
            }
            let poll_all = now >= self.next_poll;
            if poll_all {
                self.next_poll = now + self.cfg.poll_interval;
            }
            let Some(progress) = self.read_all(poll_all) else {
                return;
            };
            self.reap();
            self.update_gauges();
            if !progress {
                self.wait();
            }
        }
    }

    /// Sleeps until a watch event, the next poll or the next scan.
    fn wait(&mut self) {
        let flush = self
            .files
            .values()
            .filter_map(|t| t.stream.flush_due())
            .min();
        let deadline = self
            .next_poll
            .min(self.rescan_at)
            .min(flush.unwrap_or(self.rescan_at));
        let timeout = deadline.saturating_duration_since(Instant::now());
        match self.wake.recv_timeout(timeout) {
            Ok(w) => self.on_wake(w),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self
                .ctx
                .stop
                .store(true, std::sync::atomic::Ordering::Relaxed),
        }
        while let Ok(w) = self.wake.try_recv() {
            self.on_wake(w);
        }
    }

    fn on_wake(&mut self, w: Wake) {
        match w {
            Wake::Rescan => self.rescan_at = self.rescan_at.min(Instant::now() + RESCAN_DEBOUNCE),
            Wake::Written(p) => {
                self.written.insert(p);
            }
            Wake::Stop => {}
        }
    }

    /// Finds the files the globs match now: new ones are tracked, missing ones are gone.
    fn scan(&mut self, first_start: bool) {
        self.rescan_at = Instant::now() + self.cfg.rescan_interval;
        let mut seen = HashSet::new();
        for path in self.matching_paths() {
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let key = FileKey::of(&meta);
            seen.insert(key);
            match self.files.get_mut(&key) {
                Some(t) => {
                    if t.life != Life::Live {
                        // Renamed back, or missed by an earlier scan: followed as before.
                        tracing::debug!(source = %self.ctx.name, path = %path.display(), "file is back at a path the globs match");
                        t.life = Life::Live;
                    }
                    if t.path != path {
                        // Renamed to another name the globs match: still the same file.
                        t.path = path;
                        self.ctx
                            .positions
                            .update(key, Some(&t.path.to_string_lossy()), None);
                    }
                    if meta.len() != t.size && t.file.is_none() {
                        t.dirty = true;
                    }
                }
                None => self.track(path, first_start),
            }
        }
        for t in self.files.values_mut() {
            if t.life == Life::Live && !seen.contains(&t.key) {
                tracing::debug!(source = %self.ctx.name, path = %t.path.display(), "file rotated or deleted; reading it to its end");
                t.life = Life::Gone {
                    since: Instant::now(),
                };
                t.dirty = true;
                self.ctx.metrics.rotations.inc();
            }
        }
    }

    fn matching_paths(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for pattern in &self.cfg.paths {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            out.extend(paths.flatten().filter(|p| !self.cfg.exclude.is_match(p)));
        }
        out.sort();
        out.dedup();
        out
    }

    /// Starts following a newly seen file, from its saved position if it is still the same file.
    fn track(&mut self, path: PathBuf, first_start: bool) {
        let (file, meta) = match File::open(&path).and_then(|f| f.metadata().map(|m| (f, m))) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(source = %self.ctx.name, path = %path.display(), error = %e, "cannot open file; will retry at the next scan");
                self.last_error = Some(Note::now(format_args!(
                    "cannot open {}: {e}",
                    path.display()
                )));
                return;
            }
        };
        let key = FileKey::of(&meta);
        if self.files.contains_key(&key) {
            // Renamed between the glob and the open: a file already followed.
            // The next scan sees the new name; tracking it again would read it twice.
            self.rescan_at = self.rescan_at.min(Instant::now() + RESCAN_DEBOUNCE);
            return;
        }
        let btime = birth_time(&meta).and_then(|t| i64::try_from(t).ok());
        let head = match Head::read(&file) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(source = %self.ctx.name, path = %path.display(), error = %e, "cannot read file; will retry at the next scan");
                self.last_error = Some(Note::now(format_args!(
                    "cannot read {}: {e}",
                    path.display()
                )));
                return;
            }
        };
        let (offset, sticky) = match self.ctx.positions.claim(key) {
            Some(saved) => match still_same(&saved, &file, &meta, btime) {
                true => (saved.offset, saved.context),
                false => {
                    tracing::info!(source = %self.ctx.name, path = %path.display(), "file was replaced or truncated while logward was stopped; reading it from the start");
                    (0, Sticky::new())
                }
            },
            None if first_start && self.cfg.start_at == StartAt::End => {
                (end_of_last_line(&file, meta.len()), Sticky::new())
            }
            None => (0, Sticky::new()),
        };
        let path_str: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        let generation = self.ctx.positions.track(SavedFile {
            source: self.ctx.name.to_string(),
            path: path_str.to_string(),
            key,
            btime,
            head,
            offset,
            context: sticky.clone(),
        });
        let origin = self.ctx.source.origin(&path_str);
        let t = Tailed {
            key,
            path,
            origin,
            file: None,
            stream: StreamReader::new(&self.ctx.stream, offset, sticky),
            head,
            generation,
            life: Life::Live,
            size: meta.len(),
            last_read: Instant::now(),
            dirty: true,
            more: false,
            behind_since: None,
            last_error: None,
        };
        self.files.insert(key, t);
        if self.open < self.cfg.max_open_files {
            self.hold_open(key, file);
        }
    }

    fn hold_open(&mut self, key: FileKey, mut file: File) {
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        if file.seek(SeekFrom::Start(t.stream.read_offset())).is_ok() {
            t.file = Some(file);
            t.dirty = false;
            self.open += 1;
        }
    }

    /// Reads every file that may have grown: gone files first, so that a
    /// rotated file is read to its end before the file that replaced it.
    /// The poll looks at open files only: a closed file is reopened when a
    /// watch event or a scan says it changed, not on every poll.
    /// `None` when the pipeline has gone away.
    fn read_all(&mut self, poll_all: bool) -> Option<bool> {
        let written = std::mem::take(&mut self.written);
        let now = Instant::now();
        let mut order: Vec<(bool, Instant, FileKey)> = self
            .files
            .values()
            .filter(|t| {
                (poll_all && t.file.is_some())
                    || t.dirty
                    || t.more
                    || written.contains(&t.path)
                    || matches!(t.life, Life::Gone { .. })
                    || t.stream.flush_due().is_some_and(|d| d <= now)
            })
            .map(|t| (t.life == Life::Live, t.last_read, t.key))
            .collect();
        order.sort();
        let mut progress = false;
        for (_, _, key) in order {
            if self.ctx.stopping() {
                break;
            }
            match self.read_file(key) {
                Ok(n) => progress |= n > 0,
                Err(ReadError::PipelineClosed) => return None,
                Err(ReadError::Io(e)) => {
                    tracing::warn!(source = %self.ctx.name, error = %e, "read failed; the file will be retried");
                    if let Some(t) = self.files.get_mut(&key) {
                        t.last_error = Some(Note::now(format_args!("read failed: {e}")));
                    }
                }
            }
        }
        Some(progress)
    }

    /// One turn of one file. Returns the bytes read.
    fn read_file(&mut self, key: FileKey) -> Result<usize, ReadError> {
        if !self.ensure_open(key)? {
            return Ok(0);
        }
        let Some(t) = self.files.get_mut(&key) else {
            return Ok(0);
        };
        let Some(file) = t.file.as_mut() else {
            return Ok(0);
        };
        let size = file.metadata()?.len();
        if size < t.stream.read_offset() || (size != t.size && !t.head.matches(file)?) {
            restart_truncated(t, &self.ctx)?;
        } else if t.head.is_partial() && size > u64::from(t.head.len) {
            t.head = Head::read(file)?;
            self.ctx.positions.update(key, None, Some(t.head));
        }
        t.size = size;
        if size == t.stream.read_offset() && !t.more {
            // Nothing new. Reading anyway could only get bytes written after the
            // checks above, perhaps by a writer that truncated the file meanwhile:
            // they are read at the next turn, after the checks. (After a turn cut
            // short, the read that sees the end is still due: it decides `auto`.)
            t.stream.release_memory();
            let now = Instant::now();
            if t.stream.flush_due().is_some_and(|d| d <= now) {
                // The record held for a next line that has not come (the last trace of a file).
                let mut batch = self.ctx.batch(t.origin.clone());
                let start = t.stream.ack_offset();
                batch.flush_expired(&mut t.stream, now);
                send(
                    &self.ctx,
                    (t.key, t.generation),
                    &t.stream,
                    &mut batch,
                    start,
                )?;
            }
            return Ok(0);
        }
        let Some(file) = t.file.as_mut() else {
            return Ok(0);
        };
        let unlimited = matches!(t.life, Life::Gone { .. });
        let mut batch = self.ctx.batch(t.origin.clone());
        let mut start = t.stream.ack_offset();
        let mut total = 0;
        loop {
            let n = batch.read(&mut t.stream, file)?;
            total += n;
            let turn_over = n == 0 || (!unlimited && total >= TURN_BYTES) || self.ctx.stopping();
            if turn_over || batch.is_full() {
                start = send(
                    &self.ctx,
                    (t.key, t.generation),
                    &t.stream,
                    &mut batch,
                    start,
                )?;
            }
            if turn_over {
                t.more = n > 0;
                break;
            }
        }
        let (lines, truncated) = t.stream.take_counts();
        self.ctx.metrics.lines_read.inc_by(lines);
        self.ctx.metrics.lines_truncated.inc_by(truncated);
        self.ctx.metrics.bytes_read.inc_by(total as u64);
        if total > 0 {
            t.last_read = Instant::now();
        }
        if !t.more {
            // At the end for now: an idle file holds no buffer (a thousand open files would hold 64 MiB).
            t.stream.release_memory();
        }
        Ok(total)
    }

    /// Opens a closed file that may have grown, closing the longest-idle one if at the cap.
    fn ensure_open(&mut self, key: FileKey) -> Result<bool, ReadError> {
        let Some(t) = self.files.get(&key) else {
            return Ok(false);
        };
        if t.file.is_some() {
            return Ok(true);
        }
        let file = match File::open(&t.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.lose(
                    key,
                    "it was deleted while closed (more files than max_open_files)",
                );
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        if FileKey::of(&file.metadata()?) != key {
            self.lose(
                key,
                "another file took its name while it was closed (more files than max_open_files)",
            );
            return Ok(false);
        }
        if self.open >= self.cfg.max_open_files {
            // At the cap there is always another open file: `key` is closed.
            self.close_idlest(key);
        }
        self.hold_open(key, file);
        Ok(true)
    }

    /// Closes the open file idle the longest. A gone file is closed last: once
    /// closed it cannot be found again, and its unread end would be lost.
    /// `false` when no file but `keep` is open.
    fn close_idlest(&mut self, keep: FileKey) -> bool {
        let idlest = self
            .files
            .values()
            .filter(|t| t.file.is_some() && t.key != keep)
            .min_by_key(|t| (t.life != Life::Live, t.last_read))
            .map(|t| t.key);
        let Some(t) = idlest.and_then(|k| self.files.get_mut(&k)) else {
            return false;
        };
        t.file = None;
        t.stream.release_memory();
        self.open -= 1;
        true
    }

    /// A closed file cannot be found again: what it had not delivered is lost; say so.
    fn lose(&mut self, key: FileKey, why: &str) {
        if let Some(t) = self.files.remove(&key) {
            let unread = t.size.saturating_sub(t.stream.ack_offset());
            if unread > 0 {
                tracing::warn!(source = %self.ctx.name, path = %t.path.display(), unread_bytes = unread, "cannot reopen file: {why}; raise max_open_files");
            }
            self.ctx.positions.release(key);
        }
    }

    /// Lets go of gone files that are read to their end and quiet for `rotate_wait`,
    /// and closes files beyond the descriptor cap.
    fn reap(&mut self) {
        let done: Vec<FileKey> = self
            .files
            .values()
            .filter(|t| {
                matches!(t.life, Life::Gone { since } if since.elapsed() >= self.cfg.rotate_wait)
                    && t.last_read.elapsed() >= self.cfg.rotate_wait
            })
            .map(|t| t.key)
            .collect();
        for key in done {
            let Some(mut t) = self.files.remove(&key) else {
                continue;
            };
            // Nothing more will be written: the unterminated last line goes out too.
            let mut batch = self.ctx.batch(t.origin.clone());
            let start = t.stream.ack_offset();
            batch.finish(&mut t.stream);
            let _ = send(&self.ctx, (key, t.generation), &t.stream, &mut batch, start);
            if t.file.is_some() {
                self.open -= 1;
            }
            tracing::debug!(source = %self.ctx.name, path = %t.path.display(), "released rotated file");
            self.ctx.positions.release(key);
        }
        let none = FileKey {
            dev: u64::MAX,
            ino: u64::MAX,
        };
        while self.open > self.cfg.max_open_files && self.close_idlest(none) {}
    }

    fn update_gauges(&mut self) {
        let now = Instant::now();
        if now < self.next_gauges {
            return;
        }
        self.next_gauges = now + GAUGE_INTERVAL;
        // Every file's lag feeds the gauge; only the listed ones are formatted for the page.
        let mut lags = Vec::with_capacity(self.files.len());
        for t in self.files.values_mut() {
            let position = self.ctx.positions.committed(t.key).unwrap_or(0);
            let behind = t.size.saturating_sub(position);
            t.behind_since = (behind > 0).then(|| t.behind_since.unwrap_or(now));
            lags.push((behind, position, t.key));
        }
        let lag = lags.iter().map(|(behind, ..)| behind).sum();
        let listed = |(behind, position, key): (u64, u64, FileKey)| {
            let t = self.files.get(&key)?;
            Some(FileRow {
                path: t.path.display().to_string(),
                position,
                size: Some(t.size),
                lag_bytes: Some(behind),
                lag_seconds: Some(t.behind_since.map_or(0, |s| (now - s).as_secs())),
                rotated: matches!(t.life, Life::Gone { .. }),
                last_error: t.last_error.clone(),
            })
        };
        if lags.len() > MAX_FILES_LISTED {
            lags.select_nth_unstable_by_key(MAX_FILES_LISTED, |(behind, ..)| {
                std::cmp::Reverse(*behind)
            });
            lags.truncate(MAX_FILES_LISTED);
        }
        let mut rows: Vec<FileRow> = lags.into_iter().filter_map(listed).collect();
        rows.sort_by(|a, b| {
            b.lag_bytes
                .cmp(&a.lag_bytes)
                .then_with(|| a.path.cmp(&b.path))
        });
        self.ctx.status.publish(FilesView {
            tracked: self.files.len(),
            lag_bytes: lag,
            files: rows,
            last_error: self.last_error.clone(),
        });
        self.ctx
            .metrics
            .position_lag
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
        self.ctx.metrics.open_files.set(self.open as i64);
        self.ctx.metrics.files_tracked.set(self.files.len() as i64);
    }
}

enum ReadError {
    PipelineClosed,
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Sends what the batch gathered, covering `[start, ack_offset)`. Returns the new start.
fn send(
    ctx: &SourceCtx,
    (key, generation): (FileKey, u32),
    stream: &StreamReader,
    batch: &mut BatchBuilder,
    start: u64,
) -> Result<u64, ReadError> {
    let end = stream.ack_offset();
    let events = batch.take();
    if end <= start && events.is_empty() {
        return Ok(start);
    }
    let checkpoint = (end > start).then(|| Checkpoint {
        key,
        generation,
        start,
        end,
        context: stream.sticky().clone(),
    });
    if !ctx.send(Batch { events, checkpoint }) {
        return Err(ReadError::PipelineClosed);
    }
    Ok(end.max(start))
}

/// The file shrank below what was read, or its first bytes changed (copytruncate
/// followed by new writes): it is read again from the start.
fn restart_truncated(t: &mut Tailed, ctx: &SourceCtx) -> io::Result<()> {
    let Some(file) = t.file.as_mut() else {
        return Ok(());
    };
    tracing::info!(source = %ctx.name, path = %t.path.display(), at = t.stream.read_offset(), "file truncated; reading it from the start");
    ctx.metrics.truncations.inc();
    file.seek(SeekFrom::Start(0))?;
    t.head = Head::read(file)?;
    t.generation = ctx.positions.restart(t.key, t.head);
    t.stream = StreamReader::new(&ctx.stream, 0, Sticky::new());
    Ok(())
}

/// Whether a saved position still describes this file.
fn still_same(saved: &SavedFile, file: &File, meta: &Metadata, btime: Option<i64>) -> bool {
    let same_birth = match (saved.btime, btime) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    same_birth
        && meta.len() >= saved.offset
        && meta.len() >= u64::from(saved.head.len)
        && saved.head.matches(file).unwrap_or(false)
}

/// The offset just after the file's last complete line (for `start_at = "end"`).
fn end_of_last_line(file: &File, size: u64) -> u64 {
    const BACK: u64 = 64 * 1024;
    let from = size.saturating_sub(BACK);
    let mut buf = vec![0u8; (size - from) as usize];
    if file.read_exact_at(&mut buf, from).is_err() {
        return size;
    }
    match memchr::memrchr(b'\n', &buf) {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => size,
    }
}

/// Watches the directories the globs can match in. Failing to watch is not
/// fatal: the periodic scan still finds everything, only later.
fn watch(patterns: &[String], waker: Sender<Wake>) -> Option<notify::RecommendedWatcher> {
    let handler = move |res: notify::Result<notify::Event>| {
        for w in wakes(res) {
            let _ = waker.send(w);
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch for new files; relying on rescan_interval");
            return None;
        }
    };
    for pattern in patterns {
        let (dir, recursive) = watch_root(pattern);
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        if let Err(e) = watcher.watch(&dir, mode) {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot watch directory; relying on rescan_interval");
        }
    }
    Some(watcher)
}

/// What a watch event means for the tailer.
fn wakes(res: notify::Result<notify::Event>) -> Vec<Wake> {
    let event = match res {
        Ok(event) if !event.need_rescan() => event,
        // The watch lost events (queue overflow): only a scan knows what happened.
        Ok(_) | Err(_) => return vec![Wake::Rescan],
    };
    match event.kind {
        EventKind::Modify(notify::event::ModifyKind::Data(_))
        | EventKind::Modify(notify::event::ModifyKind::Any) => {
            event.paths.into_iter().map(Wake::Written).collect()
        }
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(_) => vec![Wake::Rescan],
        _ => Vec::new(),
    }
}

/// The deepest directory of a glob without wildcards, and whether matches can lie below it.
fn watch_root(pattern: &str) -> (PathBuf, bool) {
    let path = Path::new(pattern);
    let mut root = PathBuf::new();
    let mut components = path.components().peekable();
    while let Some(c) = components.next() {
        let s = c.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[']) || components.peek().is_none() {
            let recursive = components.peek().is_some();
            if root.as_os_str().is_empty() {
                root.push(".");
            }
            return (root, recursive);
        }
        root.push(c);
    }
    (root, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_root_is_the_literal_prefix() {
        assert_eq!(
            watch_root("/var/log/*.log"),
            (PathBuf::from("/var/log"), false)
        );
        assert_eq!(
            watch_root("/jobs/*/builds/*/log"),
            (PathBuf::from("/jobs"), true)
        );
        assert_eq!(
            watch_root("/var/log/app.log"),
            (PathBuf::from("/var/log"), false)
        );
        assert_eq!(watch_root("logs/**/*.log"), (PathBuf::from("logs"), true));
    }

    #[test]
    fn start_at_end_begins_after_the_last_complete_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, b"one\ntwo\nthr").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(end_of_last_line(&f, 11), 8);
    }
}
