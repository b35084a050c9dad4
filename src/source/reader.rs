//! Splits a byte stream into lines without ever holding more than
//! `max_line_bytes` of one line.
//!
//! Owns the read buffer and the byte offset of every line. A line longer than
//! the limit keeps its first `max_line_bytes` and the rest is skipped as it
//! streams past. It must not decode: bytes in, byte lines out.

use std::io::{self, Read};

/// The buffer a reader starts with and shrinks back to: big enough for fast
/// sequential reads, small enough for a thousand idle files.
const CHUNK: usize = 64 * 1024;

/// One line, without its `\n` (and without a `\r` before it).
#[derive(Debug, PartialEq, Eq)]
pub struct RawLine<'a> {
    pub bytes: &'a [u8],
    /// Offset of the line's first byte.
    pub offset: u64,
    /// The line was longer than the limit: `bytes` is its head, the rest was skipped.
    pub truncated: bool,
}

/// A line too long to keep: its head is kept while the rest streams past.
#[derive(Debug)]
struct LongLine {
    head: Vec<u8>,
    offset: u64,
}

#[derive(Debug)]
pub struct LineReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
    max_line: usize,
    long: Option<LongLine>,
    /// Set once the head of a long line was handed out, so the next call moves on.
    emitted_long: bool,
}

impl LineReader {
    /// A reader whose first byte is at `offset` in the stream.
    pub fn new(offset: u64, max_line: usize) -> LineReader {
        LineReader {
            buf: Vec::new(),
            start: 0,
            end: 0,
            offset,
            max_line,
            long: None,
            emitted_long: false,
        }
    }

    /// The offset of the first byte not yet handed out in a complete line:
    /// where reading must resume for nothing to be lost.
    pub fn pending_offset(&self) -> u64 {
        match &self.long {
            Some(l) => l.offset,
            None => self.offset,
        }
    }

    /// The offset of the next byte to read from the stream.
    pub fn read_offset(&self) -> u64 {
        self.offset + (self.end - self.start) as u64
    }

    /// Bytes read but not yet handed out.
    pub fn buffered(&self) -> usize {
        self.end - self.start + self.long.as_ref().map_or(0, |l| l.head.len())
    }

    /// Reads once from `r` into free buffer space. Returns the bytes read (0 at EOF).
    pub fn fill(&mut self, r: &mut impl Read) -> io::Result<usize> {
        self.make_room();
        loop {
            match r.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.buf.len() - self.end < CHUNK {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < CHUNK / 2 {
            // Grow for a line that does not fit yet; past the limit it is skipped, not kept.
            let want = (self.buf.len() * 2)
                .max(CHUNK)
                .min(self.max_line + CHUNK + 1)
                .max(self.end + CHUNK / 2);
            self.buf.resize(want, 0);
        }
    }

    /// Drops the buffer when nothing is pending, so idle files cost no memory.
    pub fn release_memory(&mut self) {
        if self.start == self.end && self.long.is_none() {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Up to `n` complete lines in the buffer, without consuming them.
    pub fn peek_lines(&self, n: usize) -> impl Iterator<Item = &[u8]> {
        let skip_long = self.long.is_some();
        let mut rest = &self.buf[self.start..self.end];
        std::iter::from_fn(move || {
            let i = memchr::memchr(b'\n', rest)?;
            let line = &rest[..i];
            rest = &rest[i + 1..];
            Some(line)
        })
        .skip(usize::from(skip_long))
        .take(n)
    }

    pub fn has_lines(&self, n: usize) -> bool {
        self.peek_lines(n).count() >= n
    }

    /// The next complete line in the buffer; `None` means "fill me".
    pub fn next_line(&mut self) -> Option<RawLine<'_>> {
        if self.emitted_long {
            self.emitted_long = false;
            self.long = None;
        }
        loop {
            let pending = &self.buf[self.start..self.end];
            let newline = memchr::memchr(b'\n', pending);
            if self.long.is_some() {
                // Skipping the tail of a long line until its newline.
                let skip = newline.map_or(pending.len(), |i| i + 1);
                self.start += skip;
                self.offset += skip as u64;
                if newline.is_none() {
                    return None;
                }
                self.emitted_long = true;
                let long = self.long.as_ref()?;
                return Some(RawLine {
                    bytes: &long.head,
                    offset: long.offset,
                    truncated: true,
                });
            }
            match newline {
                Some(i) => {
                    let (s, off) = (self.start, self.offset);
                    self.start += i + 1;
                    self.offset += i as u64 + 1;
                    let mut line = &self.buf[s..s + i];
                    if let [rest @ .., b'\r'] = line {
                        line = rest;
                    }
                    return Some(RawLine {
                        bytes: line,
                        offset: off,
                        truncated: false,
                    });
                }
                None if pending.len() > self.max_line => {
                    self.long = Some(LongLine {
                        head: pending[..self.max_line].to_vec(),
                        offset: self.offset,
                    });
                }
                None => return None,
            }
        }
    }

    /// At the end of a stream that will not grow: hands out the unterminated last line.
    pub fn take_rest(&mut self) -> Option<RawLine<'_>> {
        if self.emitted_long {
            self.emitted_long = false;
            self.long = None;
        }
        if let Some(long) = self.long.take() {
            self.offset += (self.end - self.start) as u64;
            self.start = self.end;
            self.long = Some(long);
            self.emitted_long = true;
            let long = self.long.as_ref()?;
            return Some(RawLine {
                bytes: &long.head,
                offset: long.offset,
                truncated: true,
            });
        }
        if self.start == self.end {
            return None;
        }
        let (s, off) = (self.start, self.offset);
        self.offset += (self.end - s) as u64;
        self.start = self.end;
        Some(RawLine {
            bytes: &self.buf[s..self.end],
            offset: off,
            truncated: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(String, u64, bool)> {
        let mut r = LineReader::new(0, max);
        let mut src = input;
        let mut out = Vec::new();
        loop {
            while let Some(l) = r.next_line() {
                out.push((
                    String::from_utf8_lossy(l.bytes).into_owned(),
                    l.offset,
                    l.truncated,
                ));
            }
            if r.fill(&mut src).unwrap() == 0 {
                break;
            }
        }
        if let Some(l) = r.take_rest() {
            out.push((
                String::from_utf8_lossy(l.bytes).into_owned(),
                l.offset,
                l.truncated,
            ));
        }
        out
    }

    #[test]
    fn lines_carry_their_offsets() {
        assert_eq!(
            lines(b"a\r\nbb\n\nccc", 100),
            vec![
                ("a".into(), 0, false),
                ("bb".into(), 3, false),
                ("".into(), 6, false),
                ("ccc".into(), 7, false)
            ]
        );
    }

    #[test]
    fn long_line_keeps_its_head_and_skips_the_rest() {
        let mut input = vec![b'x'; 300_000];
        input.extend_from_slice(b"\nnext\n");
        let out = lines(&input, 100);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].0.len(), out[0].1, out[0].2), (100, 0, true));
        assert_eq!(out[1], ("next".into(), 300_001, false));
    }

    #[test]
    fn buffer_stays_bounded_by_the_limit() {
        let mut r = LineReader::new(0, 1000);
        let mut src = std::io::repeat(b'y').take(10 << 20);
        while r.fill(&mut src).unwrap() > 0 {
            assert!(r.next_line().is_none());
            assert!(
                r.buf.len() <= 1000 + CHUNK + 1 + CHUNK / 2,
                "buffer grew to {}",
                r.buf.len()
            );
        }
        let rest = r.take_rest().unwrap();
        assert!(rest.truncated && rest.bytes.len() == 1000);
        assert_eq!(r.pending_offset(), 10 << 20);
    }

    #[test]
    fn pending_offset_stays_at_the_start_of_an_unfinished_line() {
        let mut r = LineReader::new(10, 100);
        r.fill(&mut &b"one\ntw"[..]).unwrap();
        assert_eq!(r.next_line().unwrap().bytes, b"one");
        assert!(r.next_line().is_none());
        assert_eq!((r.pending_offset(), r.read_offset()), (14, 16));
    }
}
