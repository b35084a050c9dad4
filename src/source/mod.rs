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
use std::time::Instant;

use tokio::sync::mpsc;

use crate::correlate::{Correlator, Sticky};
use crate::event::{Event, Origin, Record, Routed, Timestamp};
use crate::fingerprint::{FingerprintInput, Fingerprinter};
use crate::metrics::SourceMetrics;
use crate::multiline::{Joiners, Mode, Rules};
use crate::pattern::{PatternSet, Scratch};
use crate::reload::SharedPatterns;
use crate::route::{self, Route};
use crate::state::{Checkpoint, Positions};
use decode::{Decoder, Format};
use reader::LineReader;

/// A batch stops growing at this many events or bytes read, whichever comes
/// first. One read may bring more lines than that (64 KiB of two-byte lines is
/// 32768 of them): the rest wait in the stream's buffer for the next batch.
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

/// How a source turns bytes into records: the same for all its streams.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub source: Arc<str>,
    pub format: Format,
    pub max_line: usize,
    pub multiline: Mode,
    /// Lines of the stream kept for escalations' `context` (the most any route asks for).
    pub context_lines: usize,
}

impl StreamConfig {
    /// A stream read with the defaults of a source with no settings.
    pub fn new(source: Arc<str>, format: Format) -> StreamConfig {
        StreamConfig {
            source,
            format,
            max_line: crate::config::defaults::MAX_LINE_BYTES as usize,
            multiline: Mode::Auto,
            context_lines: 0,
        }
    }
}

/// What every source shares: where to send, what to count, when to stop.
#[derive(Clone)]
pub struct SourceCtx {
    pub name: Arc<str>,
    pub source: Arc<crate::config::Source>,
    pub stream: StreamConfig,
    /// Weak, so that a source blocked on input (stdin) does not keep the
    /// pipeline open at shutdown; the pipeline holds the strong sender.
    pub tx: mpsc::WeakSender<Batch>,
    pub positions: Positions,
    pub metrics: SourceMetrics,
    /// Where the source publishes its files for the status page.
    pub status: crate::status::SourceStatus,
    pub stop: Arc<AtomicBool>,
    pub patterns: SharedPatterns,
    pub routes: Arc<[Route]>,
    pub fingerprinter: Fingerprinter,
}

impl SourceCtx {
    /// A batch of the stream of `origin`, extracted and routed.
    pub fn batch(&self, origin: Origin) -> BatchBuilder {
        BatchBuilder::new(origin, Some(self.patterns.clone()))
            .with_routes(self.routes.clone())
            .with_fingerprinter(self.fingerprinter.clone())
    }

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

/// The state of one stream: line splitting, format detection, decoding,
/// multiline joining and the stream's correlation.
#[derive(Debug)]
pub struct StreamReader {
    lines: LineReader,
    /// `None` while an `auto` stream has not shown enough lines to decide.
    decoder: Option<Decoder>,
    max_line: usize,
    source: Arc<str>,
    multiline: Mode,
    joiners: Joiners,
    /// Decoded records on their way to the joiners.
    decoded: Vec<Record>,
    correlator: Correlator,
    context: ContextRing,
    /// Complete lines wait in the buffer because the last call filled a batch:
    /// they go out before anything more is read.
    held: bool,
    /// Bytes read and not yet reported by `read_chunk_upto` (see there).
    unreported: usize,
    lines_read: u64,
    truncated: u64,
}

impl StreamReader {
    /// A stream read from `offset`, resuming the sticky context saved there.
    pub fn new(cfg: &StreamConfig, offset: u64, sticky: Sticky) -> StreamReader {
        let (format, max_line) = (cfg.format, cfg.max_line);
        let decoder = (format != Format::Auto).then(|| Decoder::new(format, max_line));
        StreamReader {
            lines: LineReader::new(offset, max_line),
            decoder,
            max_line,
            source: cfg.source.clone(),
            multiline: cfg.multiline.clone(),
            joiners: Joiners::default(),
            decoded: Vec::new(),
            correlator: Correlator::resume(sticky),
            context: ContextRing::new(cfg.context_lines),
            held: false,
            unreported: 0,
            lines_read: 0,
            truncated: 0,
        }
    }

    /// Where reading must resume for nothing to be lost: the first byte of the
    /// first record not yet handed out.
    pub fn ack_offset(&self) -> u64 {
        let lines = self.lines.pending_offset();
        [
            self.decoder.as_ref().and_then(Decoder::pending_offset),
            self.joiners.pending_offset(),
        ]
        .into_iter()
        .flatten()
        .fold(lines, u64::min)
    }

    /// The sticky context as of the records handed out.
    pub fn sticky(&self) -> &Arc<Sticky> {
        self.correlator.sticky()
    }

    /// When a record held by the joiners times out, if one is held.
    pub fn flush_due(&self) -> Option<Instant> {
        self.joiners.due()
    }

    /// Hands out the records held past their timeout.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Record>) {
        self.joiners.flush_expired(now, out);
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
        self.read_chunk_upto(r, out, usize::MAX, None)
    }

    /// Decodes complete lines into about `limit` records (at least
    /// `DETECT_LINES`, so that the lines a format was detected on never wait),
    /// reading once first unless lines read earlier still wait.
    ///
    /// Returns how many bytes this call took in: the bytes read, except those
    /// of lines left waiting, which are counted by the calls that let them
    /// through. So over a stream's life the sum is the bytes read, each counted
    /// once, a call that moved anything returns more than 0, and 0 means the
    /// end of the input for now.
    pub fn read_chunk_upto(
        &mut self,
        r: &mut impl Read,
        out: &mut Vec<Record>,
        limit: usize,
        patterns: Option<&PatternSet>,
    ) -> io::Result<usize> {
        let n = if self.held { 0 } else { self.lines.fill(r)? };
        self.unreported += n;
        let at_eof = !self.held && n == 0;
        let now = Instant::now();
        let full = self.decode_complete(out, at_eof, limit.max(DETECT_LINES), patterns, now);
        if at_eof {
            self.joiners.flush_expired(now, out);
        }
        self.held = full && self.lines.has_lines(1);
        let waiting = if self.held {
            let bytes = self.lines.read_offset() - self.lines.pending_offset();
            usize::try_from(bytes).unwrap_or(usize::MAX)
        } else {
            0
        };
        // A read that brought lines reports at least a byte, whatever waits.
        let taken = match self.unreported.saturating_sub(waiting) {
            0 if n > 0 => 1,
            t => t,
        };
        self.unreported -= taken;
        Ok(taken)
    }

    /// Decodes and joins complete lines until `limit` records are out.
    /// Returns whether it stopped at the limit.
    fn decode_complete(
        &mut self,
        out: &mut Vec<Record>,
        at_eof: bool,
        limit: usize,
        patterns: Option<&PatternSet>,
        now: Instant,
    ) -> bool {
        if self.decoder.is_none() {
            let enough = self.lines.has_lines(DETECT_LINES)
                || (at_eof && self.lines.has_lines(1))
                || self.lines.buffered() > self.max_line;
            if !enough {
                return false;
            }
            self.decide();
        }
        let Some(decoder) = self.decoder.as_mut() else {
            return false;
        };
        let rules = Rules {
            mode: &self.multiline,
            patterns,
            source: &self.source,
        };
        let stop_at = out.len().saturating_add(limit);
        while out.len() < stop_at {
            let Some(line) = self.lines.next_line() else {
                return false;
            };
            self.lines_read += 1;
            self.truncated += u64::from(line.truncated);
            decoder.push(line, &mut self.decoded);
            for rec in self.decoded.drain(..) {
                self.joiners.push(rec, now, rules, out);
            }
        }
        true
    }

    /// The input has nothing more for now (a pipe whose writer is quiet): an
    /// `auto` stream decides its format from the complete lines it has, as at
    /// the end of the input, instead of holding them until more arrive.
    pub fn caught_up(
        &mut self,
        out: &mut Vec<Record>,
        limit: usize,
        patterns: Option<&PatternSet>,
    ) {
        if self.decoder.is_none() && !self.held && self.lines.has_lines(1) {
            self.decide();
            // Lines beyond the limit go out with the next read.
            self.decode_complete(out, true, limit.max(1), patterns, Instant::now());
        }
    }

    fn decide(&mut self) {
        let format = Format::detect(self.lines.peek_lines(DETECT_LINES));
        tracing::debug!(format = format.as_str(), "format auto-detected");
        self.decoder = Some(Decoder::new(format, self.max_line));
    }

    /// The stream will not grow: decode the rest, including an unterminated last line.
    pub fn finish(&mut self, out: &mut Vec<Record>, patterns: Option<&PatternSet>) {
        if self.decoder.is_none() {
            self.decide();
        }
        let now = Instant::now();
        self.decode_complete(out, true, usize::MAX, patterns, now);
        self.held = false;
        let Some(decoder) = self.decoder.as_mut() else {
            return;
        };
        if let Some(line) = self.lines.take_rest() {
            self.lines_read += 1;
            self.truncated += u64::from(line.truncated);
            decoder.push(line, &mut self.decoded);
        }
        decoder.finish(&mut self.decoded);
        let rules = Rules {
            mode: &self.multiline,
            patterns,
            source: &self.source,
        };
        for rec in self.decoded.drain(..) {
            self.joiners.push(rec, now, rules, out);
        }
        self.joiners.finish(out);
    }
}

/// The last lines of a stream, for escalations' `context`. Its buffers are
/// reused, so keeping it costs a copy per line and no allocation.
#[derive(Debug, Default)]
struct ContextRing {
    lines: std::collections::VecDeque<String>,
    cap: usize,
}

impl ContextRing {
    /// A line longer than this keeps its start: context is for reading, not for search.
    const LINE_BYTES: usize = crate::escalation::Sample::MAX_CONTEXT_LINE_BYTES;

    fn new(cap: usize) -> ContextRing {
        ContextRing {
            lines: std::collections::VecDeque::with_capacity(cap),
            cap,
        }
    }

    fn push(&mut self, line: &str) {
        if self.cap == 0 {
            return;
        }
        let mut slot = if self.lines.len() == self.cap {
            self.lines.pop_front().unwrap_or_default()
        } else {
            String::new()
        };
        slot.clear();
        let mut end = line.len().min(Self::LINE_BYTES);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        slot.push_str(&line[..end]);
        self.lines.push_back(slot);
    }

    fn lines(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}

/// Gathers events until a batch is worth sending.
pub struct BatchBuilder {
    origin: Origin,
    events: Vec<Event>,
    records: Vec<Record>,
    bytes: usize,
    /// Applied to every event as it is made; `None` leaves events as decoded.
    patterns: Option<SharedPatterns>,
    /// Events that match one of these carry their routes and context to the windows.
    routes: Arc<[Route]>,
    fingerprinter: Fingerprinter,
    scratch: Scratch,
}

impl BatchBuilder {
    pub fn new(origin: Origin, patterns: Option<SharedPatterns>) -> BatchBuilder {
        BatchBuilder {
            origin,
            events: Vec::new(),
            records: Vec::new(),
            bytes: 0,
            patterns,
            routes: Arc::from([]),
            fingerprinter: Fingerprinter::default(),
            scratch: Scratch::default(),
        }
    }

    /// Fingerprints with this fingerprinter (and its template miner).
    pub fn with_fingerprinter(mut self, fingerprinter: Fingerprinter) -> BatchBuilder {
        self.fingerprinter = fingerprinter;
        self
    }

    /// Routes events as they are made (see [`Routed`]).
    pub fn with_routes(mut self, routes: Arc<[Route]>) -> BatchBuilder {
        self.routes = routes;
        self
    }

    /// Reads a chunk from `r` into the batch, never past a full batch's events.
    /// Returns the bytes taken in (see [`StreamReader::read_chunk_upto`]); 0 only at
    /// the end of the input.
    pub fn read(&mut self, stream: &mut StreamReader, r: &mut impl Read) -> io::Result<usize> {
        let room = BATCH_EVENTS.saturating_sub(self.events.len());
        // One set for the whole read: a reload swaps sets between reads, never within.
        let set = self.pattern_set();
        let n = stream.read_chunk_upto(r, &mut self.records, room, set.as_deref())?;
        self.bytes += n;
        self.take_records(stream, set.as_deref());
        Ok(n)
    }

    pub fn finish(&mut self, stream: &mut StreamReader) {
        let set = self.pattern_set();
        stream.finish(&mut self.records, set.as_deref());
        self.take_records(stream, set.as_deref());
    }

    /// See [`StreamReader::caught_up`].
    pub fn caught_up(&mut self, stream: &mut StreamReader) {
        let room = BATCH_EVENTS.saturating_sub(self.events.len());
        let set = self.pattern_set();
        stream.caught_up(&mut self.records, room, set.as_deref());
        self.take_records(stream, set.as_deref());
    }

    /// Takes the records held past their multiline timeout.
    pub fn flush_expired(&mut self, stream: &mut StreamReader, now: Instant) {
        stream.flush_expired(now, &mut self.records);
        let set = self.pattern_set();
        self.take_records(stream, set.as_deref());
    }

    fn pattern_set(&self) -> Option<Arc<PatternSet>> {
        self.patterns.as_ref().map(|p| p.load_full())
    }

    fn take_records(&mut self, stream: &mut StreamReader, set: Option<&PatternSet>) {
        if self.records.is_empty() {
            return;
        }
        let now = Timestamp::now();
        // With no pattern loaded there is no extract stage: events stay as decoded.
        let set = set.filter(|s| !s.is_empty());
        self.events.reserve(self.records.len());
        for r in self.records.drain(..) {
            let mut ev = Event::from_record(r, &self.origin, now);
            let winner = set.and_then(|set| set.apply(&mut ev, &mut self.scratch));
            stream
                .correlator
                .apply(&mut ev, &self.origin.path_fields, winner);
            let mut input =
                FingerprintInput::from_event(&ev, winner.map(|p| p.fingerprint.as_slice()));
            input.mine = winner.is_none_or(|p| p.mine_templates);
            let (template, fingerprint) = self.fingerprinter.apply(input);
            ev.template = Some(template);
            ev.fingerprint = Some(fingerprint);
            if !self.routes.is_empty() {
                let routes: Vec<usize> = route::matching_indices(&self.routes, &ev).collect();
                if !routes.is_empty() {
                    ev.routed = Some(Box::new(Routed {
                        routes,
                        context: stream.context.lines(),
                    }));
                }
            }
            stream.context.push(&ev.line);
            self.events.push(ev);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin::new(Arc::from("t"), None, Arc::default())
    }

    /// Hands out its pieces one read at a time, as a pipe would.
    struct Pieces(std::collections::VecDeque<Vec<u8>>);

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(piece) = self.0.front_mut() else {
                return Ok(0);
            };
            let n = piece.len().min(buf.len());
            buf[..n].copy_from_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                self.0.pop_front();
            }
            Ok(n)
        }
    }

    /// Reads `input` in `pieces` as the file tailer does, checking every batch;
    /// returns the lines in order.
    fn read_in_batches(input: &[u8], pieces: &[usize]) -> Vec<String> {
        let mut cuts = vec![0];
        cuts.extend(pieces.iter().scan(0, |at, p| {
            *at += p;
            Some((*at).min(input.len()))
        }));
        cuts.push(input.len());
        let mut src = Pieces(
            cuts.windows(2)
                .map(|w| input[w[0]..w[1]].to_vec())
                .collect(),
        );
        let cfg = StreamConfig {
            source: Arc::from("t"),
            format: Format::Text,
            max_line: 1 << 20,
            multiline: Mode::None,
            context_lines: 0,
        };
        let mut stream = StreamReader::new(&cfg, 0, Sticky::new());
        let mut batch = BatchBuilder::new(origin(), None);
        let (mut taken, mut lines) = (0, Vec::new());
        loop {
            let n = batch.read(&mut stream, &mut src).unwrap();
            taken += n;
            assert!(n > 0 || src.0.is_empty(), "0 (end of input) before the end");
            if n == 0 || batch.is_full() {
                let events = batch.take();
                assert!(events.len() <= BATCH_EVENTS, "{} events", events.len());
                if let Some(last) = events.last() {
                    let end = last.offset + last.line.len() as u64 + 1;
                    assert_eq!(stream.ack_offset(), end, "ack covers the batch only");
                }
                lines.extend(events.into_iter().map(|e| e.line));
            }
            if n == 0 {
                break;
            }
        }
        batch.finish(&mut stream);
        lines.extend(batch.take().into_iter().map(|e| e.line));
        assert_eq!(taken, input.len(), "every byte is reported once");
        lines
    }

    fn tiny_lines(n: u32) -> Vec<u8> {
        (0..n)
            .flat_map(|i| [b'a' + (i % 26) as u8, b'\n'])
            .collect()
    }

    #[test]
    fn a_read_of_tiny_lines_fills_batches_of_at_most_batch_events() {
        let input = tiny_lines(40_000);
        let lines = read_in_batches(&input, &[]);
        assert_eq!(lines.len(), 40_000);
        assert!(
            lines
                .iter()
                .enumerate()
                .all(|(i, l)| l.as_bytes()[0] == b'a' + (i % 26) as u8)
        );
    }

    #[test]
    fn tiny_lines_after_a_long_partial_line_are_all_reported() {
        // The first read ends inside a long line (its bytes are reported
        // then); the read that ends it brings thousands of tiny lines.
        let mut input = vec![b'x'; 5000];
        input.push(b'\n');
        input.extend(tiny_lines(3000));
        input.extend_from_slice(b"unterminated");
        let lines = read_in_batches(&input, &[4000, 1001 + 2 * 3000 - 3]);
        assert_eq!(lines.len(), 3002);
        assert_eq!(
            (lines[0].len(), lines[3001].as_str()),
            (5000, "unterminated")
        );
    }
}
