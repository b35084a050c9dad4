//! `logward replay`: reads files once from the start, with no positions and
//! nothing sent, and prints one event per record as NDJSON on stdout.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::correlate::{PathFields, Sticky};
use crate::event::Origin;
use crate::reload::SharedPatterns;
use crate::source::decode::Format;
use crate::source::{BatchBuilder, StreamConfig, StreamReader};

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
    overrides: &dyn Fn(StreamConfig) -> StreamConfig,
    files: &[PathBuf],
    patterns: &SharedPatterns,
    out: &mut impl Write,
) -> Result<(), ReplayError> {
    let mut buf = Vec::with_capacity(1 << 20);
    for path in files {
        let source = config.and_then(|c| c.source_for_path(path));
        let path_str = path.to_string_lossy();
        let (stream_cfg, origin) = match source {
            Some(s) => (s.stream_config(), s.origin(&path_str)),
            None => {
                let name: Arc<str> = Arc::from("replay");
                let mut origin =
                    Origin::new(name.clone(), Some(Arc::from(&*path_str)), Arc::default());
                origin.path_fields = Arc::new(PathFields::of(&path_str, None));
                (StreamConfig::new(name, Format::Auto), origin)
            }
        };
        let stream_cfg = overrides(stream_cfg);
        let mut input: Box<dyn Read> = if path == Path::new("-") {
            Box::new(io::stdin().lock())
        } else {
            Box::new(File::open(path).map_err(|source| ReplayError::Open {
                path: path.clone(),
                source,
            })?)
        };
        let mut stream = StreamReader::new(&stream_cfg, 0, Sticky::new());
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
