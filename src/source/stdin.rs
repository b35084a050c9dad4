//! The stdin source: reads until EOF, then flushes everything, including an
//! unterminated last line and partial container records. Lines go out as
//! they come, also while the writer is quiet (`auto` decides its format then,
//! rather than wait for more lines). It keeps no positions: a pipe cannot be
//! re-read.

use std::time::{Duration, Instant};

use super::{Batch, BatchBuilder, SourceCtx, StreamReader};
use crate::correlate::Sticky;

/// Reads stdin to its end. Returns when stdin closes or the agent stops.
pub fn run(ctx: SourceCtx) {
    let origin = ctx.source.origin("-");
    let mut stream = StreamReader::new(&ctx.stream, 0, Sticky::new());
    let mut batch = ctx.batch(origin);
    let mut stdin = std::io::stdin().lock();
    loop {
        if ctx.stopping() {
            return;
        }
        if let Some(due) = stream.flush_due() {
            // A record is held for a next line: wait for input no longer than its timeout.
            let now = Instant::now();
            if !readable_within(due.saturating_duration_since(now)) {
                batch.flush_expired(&mut stream, Instant::now());
                if !send_taken(&ctx, &mut batch) {
                    return;
                }
                continue;
            }
        }
        let n = match batch.read(&mut stream, &mut stdin) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(source = %ctx.name, error = %e, "cannot read stdin");
                0
            }
        };
        if n == 0 {
            batch.finish(&mut stream);
        } else if stream.format().is_none() && !more_waiting() {
            batch.caught_up(&mut stream);
        }
        let (lines, truncated) = stream.take_counts();
        ctx.metrics.lines_read.inc_by(lines);
        ctx.metrics.lines_truncated.inc_by(truncated);
        ctx.metrics.bytes_read.inc_by(n as u64);
        // A pipe is read as it comes: send what a read brought rather than wait for a full batch.
        if !send_taken(&ctx, &mut batch) {
            return;
        }
        if n == 0 {
            return;
        }
    }
}

/// Sends what the batch gathered (a pipe has no positions). `false` when the pipeline is gone.
fn send_taken(ctx: &SourceCtx, batch: &mut BatchBuilder) -> bool {
    let events = batch.take();
    events.is_empty()
        || ctx.send(Batch {
            events,
            checkpoint: None,
        })
}

/// Whether stdin has more to read right now: `false` for a pipe whose writer
/// is quiet, `true` for a file (always readable) and when unsure. (Reads go
/// around `StdinLock`'s own buffer, being larger than it, so it is always empty.)
fn more_waiting() -> bool {
    readable_within(Duration::ZERO)
}

/// Whether stdin becomes readable (or at its end, or in error) within `wait`.
fn readable_within(wait: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    // Rounded up: a wait of a fraction of a millisecond must not spin.
    let ms = libc::c_int::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX);
    // SAFETY: poll(2) on one valid pollfd that lives across the call.
    let ready = unsafe { libc::poll(&mut fd, 1, ms) };
    ready != 0
}
