//! The stdin source: reads until EOF, then flushes everything, including an
//! unterminated last line and partial container records. Lines go out as
//! they come, also while the writer is quiet (`auto` decides its format then,
//! rather than wait for more lines). It keeps no positions: a pipe cannot be
//! re-read.

use std::sync::Arc;

use super::{Batch, BatchBuilder, SourceCtx, StreamReader};
use crate::event::Origin;

/// Reads stdin to its end. Returns when stdin closes or the agent stops.
pub fn run(ctx: SourceCtx) {
    let origin = Origin {
        source: ctx.name.clone(),
        path: Some(Arc::from("-")),
        labels: ctx.labels.clone(),
    };
    let mut stream = StreamReader::new(ctx.format, 0, ctx.max_line_bytes);
    let mut batch = BatchBuilder::new(origin, Some(ctx.patterns.clone()));
    let mut stdin = std::io::stdin().lock();
    loop {
        if ctx.stopping() {
            return;
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
        let events = batch.take();
        if !events.is_empty()
            && !ctx.send(Batch {
                events,
                checkpoint: None,
            })
        {
            return;
        }
        if n == 0 {
            return;
        }
    }
}

/// Whether stdin has more to read right now: `false` for a pipe whose writer
/// is quiet, `true` for a file (always readable) and when unsure. (Reads go
/// around `StdinLock`'s own buffer, being larger than it, so it is always empty.)
fn more_waiting() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll(2) on one valid pollfd that lives across the call, without waiting.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready != 0
}
