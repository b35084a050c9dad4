//! Positions: how far each file has been delivered, kept in `state_dir` and
//! written atomically (write, fsync, rename, fsync the directory).
//!
//! A position moves only when the outputs acknowledge a batch, never when it
//! is read: a crash replays what was in flight and loses nothing. Batches of a
//! file may be acknowledged out of order; the saved offset is the end of the
//! longest acknowledged prefix. This module must not read files or decide
//! identities: sources tell it what they track.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::correlate::Sticky;
use crate::fingerprint::{Miner, MinerConfig, MinerSnapshot};
use crate::source::identity::{FileKey, Head};

const POSITIONS_FILE: &str = "positions.json";
const TEMPLATES_FILE: &str = "templates.json";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state_dir {}: {source} — create it or point state_dir at a writable directory", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot read {}: {source} — check its permissions", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not a positions file ({source}) — move it away to start over; files are then read again as start_at says", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A saved position, as written to `positions.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    pub source: String,
    pub path: String,
    #[serde(flatten)]
    pub key: FileKey,
    /// Birth time in nanoseconds, where the filesystem keeps it.
    pub btime: Option<i64>,
    pub head: Head,
    pub offset: u64,
    /// The stream's sticky context at `offset` (see `correlate`).
    #[serde(default, skip_serializing_if = "Sticky::is_empty")]
    pub context: Sticky,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "version")]
enum PositionsFile {
    #[serde(rename = "1")]
    V1 {
        /// Sources that have started once: `start_at` no longer applies to them.
        sources: BTreeSet<String>,
        files: Vec<SavedFile>,
    },
}

/// The range of one file that one batch covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub key: FileKey,
    /// Bumped when the file is truncated, so acknowledgements from before are ignored.
    pub generation: u32,
    pub start: u64,
    pub end: u64,
    /// The stream's sticky context at `end`.
    pub context: Arc<Sticky>,
}

#[derive(Debug)]
struct Tracked {
    saved: SavedFile,
    generation: u32,
    /// Start offsets of batches sent and not yet acknowledged.
    outstanding: BTreeSet<u64>,
    acked_end: u64,
    /// Sticky contexts at the ends of acknowledged batches past the committed offset.
    contexts: BTreeMap<u64, Arc<Sticky>>,
    released: bool,
}

impl Tracked {
    fn committed(&self) -> u64 {
        self.outstanding.first().copied().unwrap_or(self.acked_end)
    }
}

#[derive(Debug, Default)]
struct Book {
    started_sources: BTreeSet<String>,
    /// Loaded at start and not yet claimed by a source.
    unclaimed: HashMap<FileKey, SavedFile>,
    tracked: HashMap<FileKey, Tracked>,
    dirty: bool,
}

/// The shared position book of one agent.
#[derive(Debug, Clone)]
pub struct Positions {
    book: Arc<Mutex<Book>>,
    /// Held for a whole write: the source that becomes ready, the checkpoint loop and the
    /// shutdown all persist, and two writes at once would share `positions.tmp` (one rename
    /// fails, or a snapshot older than the one on disk replaces it).
    writing: Arc<Mutex<()>>,
    path: PathBuf,
}

impl Positions {
    /// Opens (creating if needed) `state_dir` and loads its positions.
    pub fn open(state_dir: &Path) -> Result<Positions, StateError> {
        fs::create_dir_all(state_dir).map_err(|source| StateError::CreateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(POSITIONS_FILE);
        let mut book = Book::default();
        match fs::read(&path) {
            Ok(bytes) => {
                let PositionsFile::V1 { sources, files } =
                    serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                book.started_sources = sources;
                book.unclaimed = files.into_iter().map(|f| (f.key, f)).collect();
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StateError::Read { path, source }),
        }
        Ok(Positions {
            book: Arc::new(Mutex::new(book)),
            writing: Arc::default(),
            path,
        })
    }

    /// Positions that live only in memory, for `replay` and stdin.
    pub fn in_memory() -> Positions {
        Positions {
            book: Arc::default(),
            writing: Arc::default(),
            path: PathBuf::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        // The book holds plain data; a panic elsewhere cannot leave it half-updated.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the source ran before (so `start_at` does not apply to it).
    pub fn source_started_before(&self, source: &str) -> bool {
        self.lock().started_sources.contains(source)
    }

    /// Claims the saved position of a file, if one was loaded.
    pub fn claim(&self, key: FileKey) -> Option<SavedFile> {
        let mut book = self.lock();
        book.unclaimed.remove(&key)
    }

    /// The source finished its first scan: saved files it did not claim are gone.
    pub fn first_scan_done(&self, source: &str) {
        let mut book = self.lock();
        book.unclaimed.retain(|_, f| f.source != source);
        book.started_sources.insert(source.to_string());
        book.dirty = true;
    }

    /// Starts tracking a file whose delivered prefix ends at `saved.offset`.
    pub fn track(&self, saved: SavedFile) -> u32 {
        let mut book = self.lock();
        let generation = book.tracked.get(&saved.key).map_or(0, |t| t.generation + 1);
        let acked_end = saved.offset;
        book.tracked.insert(
            saved.key,
            Tracked {
                saved,
                generation,
                outstanding: BTreeSet::new(),
                acked_end,
                contexts: BTreeMap::new(),
                released: false,
            },
        );
        book.dirty = true;
        generation
    }

    /// The file was truncated: its position starts again at zero.
    pub fn restart(&self, key: FileKey, head: Head) -> u32 {
        let mut book = self.lock();
        let Some(t) = book.tracked.get_mut(&key) else {
            return 0;
        };
        t.generation += 1;
        t.outstanding.clear();
        t.contexts.clear();
        t.acked_end = 0;
        t.saved.offset = 0;
        t.saved.context.clear();
        t.saved.head = head;
        let generation = t.generation;
        book.dirty = true;
        generation
    }

    pub fn update(&self, key: FileKey, path: Option<&str>, head: Option<Head>) {
        let mut book = self.lock();
        if let Some(t) = book.tracked.get_mut(&key) {
            if let Some(p) = path {
                t.saved.path = p.to_string();
            }
            if let Some(h) = head {
                t.saved.head = h;
            }
            book.dirty = true;
        }
    }

    /// A batch covering `[start, end)` was sent downstream.
    pub fn issue(&self, cp: &Checkpoint) {
        let mut book = self.lock();
        if let Some(t) = book
            .tracked
            .get_mut(&cp.key)
            .filter(|t| t.generation == cp.generation)
        {
            t.outstanding.insert(cp.start);
        }
    }

    /// The outputs delivered a batch.
    pub fn ack(&self, cp: &Checkpoint) {
        let mut book = self.lock();
        let Some(t) = book
            .tracked
            .get_mut(&cp.key)
            .filter(|t| t.generation == cp.generation)
        else {
            return;
        };
        t.outstanding.remove(&cp.start);
        t.acked_end = t.acked_end.max(cp.end);
        t.contexts.insert(cp.end, cp.context.clone());
        t.saved.offset = t.committed();
        let offset = t.saved.offset;
        if let Some(context) = t.contexts.get(&offset) {
            if **context != t.saved.context {
                t.saved.context = (**context).clone();
            }
        }
        t.contexts = t.contexts.split_off(&(offset + 1));
        let drop = t.released && t.outstanding.is_empty();
        if drop {
            book.tracked.remove(&cp.key);
        }
        book.dirty = true;
    }

    /// The source let go of a file for good (deleted or rotated away and read to its end).
    pub fn release(&self, key: FileKey) {
        let mut book = self.lock();
        if let Some(t) = book.tracked.get_mut(&key) {
            t.released = true;
            if t.outstanding.is_empty() {
                book.tracked.remove(&key);
            }
            book.dirty = true;
        }
    }

    /// The delivered offset of a tracked file.
    pub fn committed(&self, key: FileKey) -> Option<u64> {
        self.lock().tracked.get(&key).map(|t| t.saved.offset)
    }

    /// Writes the positions if they changed since the last write.
    pub fn persist(&self) -> io::Result<bool> {
        self.persist_after(|| Ok(()))
    }

    /// Writes the positions if they changed, calling `make_durable` between
    /// taking the snapshot and writing it: everything acknowledged before the
    /// snapshot was written to the outputs before it, so syncing the outputs
    /// there means a saved position never runs ahead of what is on disk.
    pub fn persist_after(&self, make_durable: impl FnOnce() -> io::Result<()>) -> io::Result<bool> {
        if self.path.as_os_str().is_empty() {
            return Ok(false);
        }
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = {
            let mut book = self.lock();
            if !book.dirty {
                return Ok(false);
            }
            book.dirty = false;
            let mut files: Vec<SavedFile> = book
                .tracked
                .values()
                .map(|t| t.saved.clone())
                .chain(book.unclaimed.values().cloned())
                .collect();
            files.sort_by(|a, b| (&a.source, &a.path).cmp(&(&b.source, &b.path)));
            let file = PositionsFile::V1 {
                sources: book.started_sources.clone(),
                files,
            };
            serde_json::to_vec_pretty(&file).map_err(io::Error::other)?
        };
        let written = make_durable().and_then(|()| write_atomic(&self.path, &bytes));
        if written.is_err() {
            self.lock().dirty = true;
        }
        written.map(|()| true)
    }
}

/// The template miner's clusters, kept in `state_dir/templates.json` so that
/// fingerprints of merged templates stay the same across restarts.
#[derive(Debug)]
pub struct TemplateState {
    miner: Arc<Mutex<Miner>>,
    path: PathBuf,
    /// `Miner::changes` when last saved.
    saved: Mutex<u64>,
}

impl TemplateState {
    /// The miner, restored from `state_dir` when a saved one is readable.
    pub fn open(state_dir: &Path, config: MinerConfig) -> TemplateState {
        let path = state_dir.join(TEMPLATES_FILE);
        let mut miner = Miner::new(config);
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<MinerSnapshot>(&bytes) {
                Ok(snapshot) => {
                    let kept = miner.restore(snapshot);
                    tracing::debug!(templates = kept, "template miner restored");
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "saved templates are unreadable; starting afresh (merged templates may get new fingerprints)");
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read saved templates; starting afresh");
            }
        }
        let saved = Mutex::new(miner.changes());
        TemplateState {
            miner: Arc::new(Mutex::new(miner)),
            path,
            saved,
        }
    }

    pub fn miner(&self) -> &Arc<Mutex<Miner>> {
        &self.miner
    }

    /// Templates held, and evicted so far.
    pub fn stats(&self) -> (usize, u64) {
        let miner = self.miner.lock().unwrap_or_else(|p| p.into_inner());
        (miner.len(), miner.evictions())
    }

    /// Saves the clusters if any was made or widened since the last save.
    pub fn save(&self) -> io::Result<()> {
        let (changes, snapshot) = {
            let miner = self.miner.lock().unwrap_or_else(|p| p.into_inner());
            let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
            if *saved == miner.changes() {
                return Ok(());
            }
            *saved = miner.changes();
            (miner.changes(), miner.snapshot())
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(io::Error::other)?;
        let written = write_atomic(&self.path, &bytes);
        if written.is_err() {
            // Saved next time.
            let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
            if *saved == changes {
                *saved = changes.wrapping_sub(1);
            }
        }
        written
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(offset: u64) -> SavedFile {
        SavedFile {
            source: "s".into(),
            path: "/a.log".into(),
            key: FileKey { dev: 1, ino: 2 },
            btime: None,
            head: Head { len: 0, hash: 0 },
            offset,
            context: Sticky::new(),
        }
    }

    fn cp(g: u32, start: u64, end: u64) -> Checkpoint {
        Checkpoint {
            key: FileKey { dev: 1, ino: 2 },
            generation: g,
            start,
            end,
            context: Arc::default(),
        }
    }

    #[test]
    fn position_is_the_end_of_the_acknowledged_prefix() {
        let p = Positions::in_memory();
        let g = p.track(saved(0));
        let key = FileKey { dev: 1, ino: 2 };
        for (s, e) in [(0, 10), (10, 20), (20, 30)] {
            p.issue(&cp(g, s, e));
        }
        p.ack(&cp(g, 10, 20));
        assert_eq!(
            p.committed(key),
            Some(0),
            "a later batch alone moves nothing"
        );
        p.ack(&cp(g, 0, 10));
        assert_eq!(
            p.committed(key),
            Some(20),
            "the first two batches are the prefix; the third's start is still outstanding"
        );
        p.ack(&cp(g, 20, 30));
        assert_eq!(p.committed(key), Some(30));
    }

    #[test]
    fn acknowledgements_from_before_a_truncation_are_ignored() {
        let p = Positions::in_memory();
        let g = p.track(saved(0));
        p.issue(&cp(g, 0, 100));
        let g2 = p.restart(FileKey { dev: 1, ino: 2 }, Head { len: 0, hash: 0 });
        p.ack(&cp(g, 0, 100));
        assert_eq!(p.committed(FileKey { dev: 1, ino: 2 }), Some(0));
        p.issue(&cp(g2, 0, 5));
        p.ack(&cp(g2, 0, 5));
        assert_eq!(p.committed(FileKey { dev: 1, ino: 2 }), Some(5));
    }

    #[test]
    fn positions_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = Positions::open(dir.path()).unwrap();
        let g = p.track(saved(0));
        p.issue(&cp(g, 0, 42));
        p.ack(&cp(g, 0, 42));
        p.first_scan_done("s");
        assert!(p.persist().unwrap());
        assert!(!p.persist().unwrap(), "nothing changed, nothing written");
        let q = Positions::open(dir.path()).unwrap();
        assert!(q.source_started_before("s"));
        assert_eq!(
            q.claim(FileKey { dev: 1, ino: 2 }).map(|f| f.offset),
            Some(42)
        );
    }

    #[test]
    fn concurrent_persists_all_succeed_and_leave_the_newest_positions() {
        let dir = tempfile::tempdir().unwrap();
        let p = Positions::open(dir.path()).unwrap();
        let g = p.track(saved(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        p.first_scan_done("s");
                        p.persist().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        p.issue(&cp(g, 0, 42));
        p.ack(&cp(g, 0, 42));
        p.persist().unwrap();
        let q = Positions::open(dir.path()).unwrap();
        assert_eq!(
            q.claim(FileKey { dev: 1, ino: 2 }).map(|f| f.offset),
            Some(42)
        );
    }

    #[test]
    fn corrupt_positions_file_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(POSITIONS_FILE), b"{not json").unwrap();
        let err = Positions::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("move it away"), "{err}");
    }
}
