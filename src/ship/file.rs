//! `[output.file]`: appends events as NDJSON (SPEC §4), one batch per write.
//!
//! A batch is written with a single `write_all` of whole lines, so a crash
//! leaves at most one torn line at the end; it is cut off at the next start,
//! and since its batch was never acknowledged, it is delivered again. A write
//! that fails is retried until it works: reading waits meanwhile.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Output, Receipt};
use crate::event::Event;
use crate::metrics::OutputMetrics;

/// The first and the longest wait between retries of a failed write.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("output file {}: {source}", path.display())]
pub struct FileOutputError {
    path: PathBuf,
    source: io::Error,
}

/// Opens an NDJSON file for appending, creating its directory, and cuts a
/// torn last line (a crash while writing). Returns the file and the bytes cut.
pub(crate) fn open_ndjson(path: &Path) -> std::io::Result<(File, u64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let cut = cut_torn_line(&mut file)?;
    Ok((file, cut))
}

pub struct FileOutput {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    metrics: OutputMetrics,
}

impl FileOutput {
    /// Opens the file for appending, creating its directory, and cuts a torn last line.
    pub fn open(path: &Path, metrics: OutputMetrics) -> Result<FileOutput, FileOutputError> {
        let err = |source| FileOutputError {
            path: path.to_path_buf(),
            source,
        };
        let (file, cut) = open_ndjson(path).map_err(err)?;
        if cut > 0 {
            tracing::warn!(
                cut_bytes = cut,
                "output file ended in a torn line (crash while writing); cut it, it will be written again"
            );
        }
        Ok(FileOutput {
            path: path.to_path_buf(),
            file,
            buf: Vec::with_capacity(1 << 20),
            metrics,
        })
    }

    /// Appends the events; when this returns `Ok`, the kernel has them.
    pub fn write(&mut self, events: &[Event]) -> Result<(), FileOutputError> {
        self.buf.clear();
        for e in events {
            e.write_ndjson(&mut self.buf);
        }
        self.file
            .write_all(&self.buf)
            .map_err(|source| FileOutputError {
                path: self.path.clone(),
                source,
            })?;
        if self.buf.capacity() > 4 << 20 {
            self.buf = Vec::with_capacity(1 << 20);
        }
        Ok(())
    }

    /// A second handle on the file, for syncing it from the checkpointer.
    pub fn sync_handle(&self) -> Result<std::sync::Arc<File>, FileOutputError> {
        self.file
            .try_clone()
            .map(std::sync::Arc::new)
            .map_err(|source| FileOutputError {
                path: self.path.clone(),
                source,
            })
    }

    /// Makes what was written durable on disk (at shutdown, before positions are saved).
    pub fn sync(&self) -> Result<(), FileOutputError> {
        self.file.sync_data().map_err(|source| FileOutputError {
            path: self.path.clone(),
            source,
        })
    }
}

impl Output for FileOutput {
    /// Appends the events, retrying until it works; the kernel holds them when it accepts.
    fn send(&mut self, events: &[Event], receipt: Receipt) {
        let mut wait = RETRY_FIRST;
        loop {
            match self.write(events) {
                Ok(()) => {
                    self.metrics.events.inc_by(events.len() as u64);
                    return receipt.accept();
                }
                Err(e) => {
                    self.metrics.errors.inc();
                    tracing::error!(error = %e, retry_in = ?wait, "output write failed; reading is paused until it succeeds");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }

    fn finish(self: Box<Self>, _deadline: Instant) {
        if let Err(e) = self.sync() {
            tracing::error!(error = %e, "cannot sync the output file");
        }
    }
}

/// Truncates the file after its last `\n`, if it does not end with one; returns the number of
/// bytes cut.
pub(crate) fn cut_torn_line(file: &mut File) -> io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(0);
    }
    let mut pos = len;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let from = pos.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(pos - from) as usize];
        file.read_exact_at(chunk, from)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            let keep = from + i as u64 + 1;
            if keep != len {
                file.set_len(keep)?;
            }
            return Ok(len - keep);
        }
        if from == 0 {
            file.set_len(0)?;
            return Ok(len);
        }
        pos = from;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_last_line_is_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.ndjson");
        std::fs::write(&p, b"{\"a\":1}\n{\"a\":").unwrap();
        drop(FileOutput::open(&p, crate::metrics::Metrics::new().output("file")).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\":1}\n");
    }
}
