//! `logward replay`: reads files once from the start, with no positions, and prints one event
//! per record as NDJSON on stdout and the escalations its routes make on stderr; with
//! `--send` ([`send`]) the escalations also go to the configured receivers.

pub mod send;

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::correlate::{PathFields, Sticky};
use crate::escalate::Escalator;
use crate::escalation::Escalation;
use crate::event::Origin;
use crate::fingerprint::{Fingerprinter, Miner, MinerConfig};
use crate::reload::SharedPatterns;
use crate::route::Route;
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

/// Replays each file (`-` is stdin) to `out`, and the escalations the
/// config's routes would have made, on the events' own time, to `escalations`.
pub fn replay(
    config: Option<&Config>,
    overrides: &dyn Fn(StreamConfig) -> StreamConfig,
    files: &[PathBuf],
    patterns: &SharedPatterns,
    out: &mut impl Write,
    escalations: &mut impl Write,
    send: Option<&send::Sending>,
) -> Result<(), ReplayError> {
    let mut buf = Vec::with_capacity(1 << 20);
    let routes: Arc<[Route]> = config.map_or_else(|| Arc::from([]), |c| c.routes.clone());
    let context_lines = routes.iter().map(|r| r.context_lines).max().unwrap_or(0);
    let mut windows = Escalator::in_memory(routes.clone())
        .with_loki_labels(config.map(Config::loki_query_labels).unwrap_or_default());
    // One miner for every file, as in the agent: the same message gets one fingerprint.
    let fingerprinter = Fingerprinter::new(Some(Arc::new(Mutex::new(Miner::new(
        MinerConfig::default(),
    )))));
    let mut decided: Vec<Escalation> = Vec::new();
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
        let stream_cfg = overrides(StreamConfig {
            context_lines,
            ..stream_cfg
        });
        let mut input: Box<dyn Read> = if path == Path::new("-") {
            Box::new(io::stdin().lock())
        } else {
            Box::new(File::open(path).map_err(|source| ReplayError::Open {
                path: path.clone(),
                source,
            })?)
        };
        let mut stream = StreamReader::new(&stream_cfg, 0, Sticky::new());
        let mut batch = BatchBuilder::new(origin, Some(patterns.clone()))
            .with_routes(routes.clone())
            .with_fingerprinter(fingerprinter.clone());
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
            let events = batch.take();
            for e in &events {
                e.write_ndjson(&mut buf);
            }
            out.write_all(&buf).map_err(ReplayError::Write)?;
            windows.observe(&events, None, &mut |e| decided.push(e));
            if let (Some(send), Some(last)) = (send, events.last()) {
                for esc in send.over_rate() {
                    windows.fold(&esc, last.ts, &mut |e| decided.push(e));
                }
            }
            write_escalations(escalations, &mut decided, send)?;
            if n == 0 {
                break;
            }
        }
    }
    windows.finish(&mut |e| decided.push(e));
    write_escalations(escalations, &mut decided, send)?;
    out.flush().map_err(ReplayError::Write)
}

/// Writes the escalations decided so far as NDJSON (SPEC §5), and submits them when sending.
fn write_escalations(
    to: &mut impl Write,
    decided: &mut Vec<Escalation>,
    send: Option<&send::Sending>,
) -> Result<(), ReplayError> {
    if decided.is_empty() {
        return Ok(());
    }
    let mut buf = Vec::new();
    for esc in decided.drain(..) {
        // Serializing plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut buf, &esc);
        buf.push(b'\n');
        if let Some(send) = send {
            send.submit(&esc);
        }
    }
    to.write_all(&buf).map_err(ReplayError::Write)
}
