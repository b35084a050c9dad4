//! `logward replay`: reads files once from the start, with no positions and
//! nothing sent, and prints one event per record as NDJSON on stdout.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, defaults};
use crate::event::Origin;
use crate::reload::SharedPatterns;
use crate::source::decode::Format;
use crate::source::{BatchBuilder, StreamReader};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{}: read failed: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write to stdout: {0}")]
    Write(io::Error),
}

/// Replays each file (`-` is stdin) to `out`.
pub fn replay(
    config: Option<&Config>,
    format: Option<Format>,
    files: &[PathBuf],
    patterns: &SharedPatterns,
    out: &mut impl Write,
) -> Result<(), ReplayError> {
    let mut buf = Vec::with_capacity(1 << 20);
    for path in files {
        let source = config.and_then(|c| c.source_for_path(path));
        let origin = Origin {
            source: source.map_or_else(|| Arc::from("replay"), |s| s.name.clone()),
            path: Some(Arc::from(path.to_string_lossy().as_ref())),
            labels: source.map(|s| s.labels.clone()).unwrap_or_default(),
        };
        let format = format.or(source.map(|s| s.format)).unwrap_or(Format::Auto);
        let max_line = source.map_or(defaults::MAX_LINE_BYTES as usize, |s| s.max_line_bytes);
        let mut input: Box<dyn Read> = if path == Path::new("-") {
            Box::new(io::stdin().lock())
        } else {
            Box::new(File::open(path).map_err(|source| ReplayError::Open {
                path: path.clone(),
                source,
            })?)
        };
        let mut stream = StreamReader::new(format, 0, max_line);
        let mut batch = BatchBuilder::new(origin, Some(patterns.clone()));
        loop {
            let n = batch
                .read(&mut stream, &mut input)
                .map_err(|source| ReplayError::Read {
                    path: path.clone(),
                    source,
                })?;
            if n == 0 {
                batch.finish(&mut stream);
            }
            buf.clear();
            for e in batch.take() {
                e.write_ndjson(&mut buf);
            }
            out.write_all(&buf).map_err(ReplayError::Write)?;
            if n == 0 {
                break;
            }
        }
    }
    out.flush().map_err(ReplayError::Write)
}
