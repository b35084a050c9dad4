//! Sources: where records come from. Files (globs, rotation, truncation,
//! restarts) and stdin, in the formats `decode` knows.
//!
//! A source reads, decodes and sends batches of events downstream, each with
//! the file range it covers; it never moves a position itself (see `state`).
//! Every source runs on its own thread and blocks when the pipeline is full,
//! so a slow output pauses reading instead of growing memory.

pub mod decode;
pub mod file;
pub mod identity;
pub mod reader;
pub mod stdin;

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::event::{Event, Origin, Record, Timestamp};
use crate::metrics::SourceMetrics;
use crate::state::{Checkpoint, Positions};
use decode::{Decoder, Format};
use reader::LineReader;

/// A batch stops growing at this many events or bytes read, whichever comes first.
const BATCH_EVENTS: usize = 1024;
const BATCH_BYTES: usize = 512 * 1024;
/// How many complete lines `auto` looks at to decide a stream's format.
const DETECT_LINES: usize = 8;

/// Events of one stream, in order, with the file range they cover (none for stdin).
#[derive(Debug)]
pub struct Batch {
    pub events: Vec<Event>,
    pub checkpoint: Option<Checkpoint>,
}

/// What every source shares: where to send, what to count, when to stop.
#[derive(Clone)]
pub struct SourceCtx {
    pub name: Arc<str>,
    pub labels: Arc<std::collections::BTreeMap<String, String>>,
    pub format: Format,
    pub max_line_bytes: usize,
    /// Weak, so that a source blocked on input (stdin) does not keep the
    /// pipeline open at shutdown; the pipeline holds the strong sender.
    pub tx: mpsc::WeakSender<Batch>,
    pub positions: Positions,
    pub metrics: SourceMetrics,
    pub stop: Arc<AtomicBool>,
}

impl SourceCtx {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sends a batch, waiting while the pipeline is full. `false` when the pipeline is gone.
    pub fn send(&self, batch: Batch) -> bool {
        if let Some(cp) = &batch.checkpoint {
            self.positions.issue(cp);
        }
        self.metrics.events.inc_by(batch.events.len() as u64);
        self.tx
            .upgrade()
            .is_some_and(|tx| tx.blocking_send(batch).is_ok())
    }
}

/// Lines to records for one stream: line splitting, format detection, decoding.
#[derive(Debug)]
pub struct StreamReader {
    lines: LineReader,
    /// `None` while an `auto` stream has not shown enough lines to decide.
    decoder: Option<Decoder>,
    max_line: usize,
    lines_read: u64,
    truncated: u64,
}

impl StreamReader {
    pub fn new(format: Format, offset: u64, max_line: usize) -> StreamReader {
        let decoder = (format != Format::Auto).then(|| Decoder::new(format, max_line));
        StreamReader {
            lines: LineReader::new(offset, max_line),
            decoder,
            max_line,
            lines_read: 0,
            truncated: 0,
        }
    }

    /// Where reading must resume for nothing to be lost: the first byte of the
    /// first record not yet handed out.
    pub fn ack_offset(&self) -> u64 {
        let lines = self.lines.pending_offset();
        self.decoder
            .as_ref()
            .and_then(Decoder::pending_offset)
            .map_or(lines, |d| d.min(lines))
    }

    pub fn read_offset(&self) -> u64 {
        self.lines.read_offset()
    }

    pub fn format(&self) -> Option<Format> {
        self.decoder.as_ref().map(Decoder::format)
    }

    /// Lines and truncated lines seen since the last call.
    pub fn take_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.lines_read),
            std::mem::take(&mut self.truncated),
        )
    }

    pub fn release_memory(&mut self) {
        self.lines.release_memory();
    }

    /// Reads once and decodes every complete line. Returns the bytes read (0 at EOF).
    pub fn read_chunk(&mut self, r: &mut impl Read, out: &mut Vec<Record>) -> io::Result<usize> {
        let n = self.lines.fill(r)?;
        self.decode_complete(out, n == 0);
        Ok(n)
    }

    fn decode_complete(&mut self, out: &mut Vec<Record>, at_eof: bool) {
        if self.decoder.is_none() {
            let enough = self.lines.has_lines(DETECT_LINES)
                || (at_eof && self.lines.has_lines(1))
                || self.lines.buffered() > self.max_line;
            if !enough {
                return;
            }
            self.decide();
        }
        let Some(decoder) = self.decoder.as_mut() else {
            return;
        };
        while let Some(line) = self.lines.next_line() {
            self.lines_read += 1;
            self.truncated += u64::from(line.truncated);
            decoder.push(line, out);
        }
    }

    fn decide(&mut self) {
        let format = Format::detect(self.lines.peek_lines(DETECT_LINES));
        tracing::debug!(format = format.as_str(), "format auto-detected");
        self.decoder = Some(Decoder::new(format, self.max_line));
    }

    /// The stream will not grow: decode the rest, including an unterminated last line.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        if self.decoder.is_none() {
            self.decide();
        }
        self.decode_complete(out, true);
        let Some(decoder) = self.decoder.as_mut() else {
            return;
        };
        if let Some(line) = self.lines.take_rest() {
            self.lines_read += 1;
            self.truncated += u64::from(line.truncated);
            decoder.push(line, out);
        }
        decoder.finish(out);
    }
}

/// Gathers events until a batch is worth sending.
pub struct BatchBuilder {
    origin: Origin,
    events: Vec<Event>,
    records: Vec<Record>,
    bytes: usize,
}

impl BatchBuilder {
    pub fn new(origin: Origin) -> BatchBuilder {
        BatchBuilder {
            origin,
            events: Vec::new(),
            records: Vec::new(),
            bytes: 0,
        }
    }

    pub fn set_origin(&mut self, origin: Origin) {
        self.origin = origin;
    }

    /// Reads a chunk from `r` into the batch. Returns the bytes read.
    pub fn read(&mut self, stream: &mut StreamReader, r: &mut impl Read) -> io::Result<usize> {
        let n = stream.read_chunk(r, &mut self.records)?;
        self.bytes += n;
        self.take_records();
        Ok(n)
    }

    pub fn finish(&mut self, stream: &mut StreamReader) {
        stream.finish(&mut self.records);
        self.take_records();
    }

    fn take_records(&mut self) {
        if self.records.is_empty() {
            return;
        }
        let now = Timestamp::now();
        self.events.reserve(self.records.len());
        for r in self.records.drain(..) {
            self.events.push(Event::from_record(r, &self.origin, now));
        }
    }

    pub fn is_full(&self) -> bool {
        self.events.len() >= BATCH_EVENTS || self.bytes >= BATCH_BYTES
    }

    /// Takes the events gathered so far.
    pub fn take(&mut self) -> Vec<Event> {
        self.bytes = 0;
        std::mem::replace(&mut self.events, Vec::with_capacity(BATCH_EVENTS.min(64)))
    }
}
