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
        self.skipping().map_or(self.offset, |l| l.offset)
    }

    /// The long line whose tail is being skipped, if its head is not handed out yet.
    fn skipping(&self) -> Option<&LongLine> {
        self.long.as_ref().filter(|_| !self.emitted_long)
    }

    /// The offset of the next byte to read from the stream.
    pub fn read_offset(&self) -> u64 {
        self.offset + (self.end - self.start) as u64
    }

    /// Bytes read but not yet handed out.
    pub fn buffered(&self) -> usize {
        self.end - self.start + self.skipping().map_or(0, |l| l.head.len())
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
        if self.start == self.end && self.skipping().is_none() {
            self.long = None;
            self.emitted_long = false;
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Up to `n` complete lines in the buffer, without consuming them.
    pub fn peek_lines(&self, n: usize) -> impl Iterator<Item = &[u8]> {
        let skip_long = self.skipping().is_some();
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
                newline?;
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
                    return Some(self.cut(s, s + i, off));
                }
                // One byte more than the limit may still be the `\r` of a line that fits.
                None if pending.len() > self.max_line + 1
                    || (pending.len() == self.max_line + 1 && pending[self.max_line] != b'\r') =>
                {
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
        Some(self.cut(s, self.end, off))
    }

    /// The line in `buf[from..to]` (its newline excluded): without a final `\r`,
    /// and cut to the limit when it is longer (a line that fit in the buffer
    /// whole is cut like one that streamed past).
    fn cut(&self, from: usize, to: usize, offset: u64) -> RawLine<'_> {
        let mut line = &self.buf[from..to];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        let truncated = line.len() > self.max_line;
        RawLine {
            bytes: &line[..line.len().min(self.max_line)],
            offset,
            truncated,
        }
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
    fn line_longer_than_the_limit_is_cut_even_when_it_fits_the_buffer() {
        let mut input = vec![b'x'; 250];
        input.extend_from_slice(b"\r\nnext\n");
        input.extend_from_slice(&[b'y'; 150]);
        let out = lines(&input, 100);
        assert_eq!(out.len(), 3);
        assert_eq!((out[0].0.len(), out[0].1, out[0].2), (100, 0, true));
        assert_eq!(out[1], ("next".into(), 252, false));
        assert_eq!((out[2].0.len(), out[2].1, out[2].2), (100, 257, true));
    }

    #[test]
    fn line_of_exactly_the_limit_is_whole() {
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(&[b'y'; 100]);
        let out = lines(&input, 100);
        assert_eq!((out[0].0.len(), out[0].2), (100, false));
        assert_eq!((out[1].0.len(), out[1].1, out[1].2), (100, 102, false));
    }

    #[test]
    fn line_of_the_limit_with_its_cr_arriving_alone_is_whole() {
        let mut r = LineReader::new(0, 4);
        r.fill(&mut &b"abcd\r"[..]).unwrap();
        assert!(r.next_line().is_none());
        r.fill(&mut &b"\nz\n"[..]).unwrap();
        let l = r.next_line().unwrap();
        assert_eq!((l.bytes, l.truncated), (&b"abcd"[..], false));
    }

    #[test]
    fn handing_out_a_long_line_moves_the_pending_offset_past_it() {
        let mut r = LineReader::new(0, 10);
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\nab\ncd\n");
        let mut src = &input[..];
        r.fill(&mut src).unwrap();
        assert!(r.next_line().is_none());
        assert_eq!(r.pending_offset(), 0, "the long line is not out yet");
        while r.fill(&mut src).unwrap() > 0 {}
        assert!(r.next_line().unwrap().truncated);
        assert_eq!(r.pending_offset(), 100_001);
        assert_eq!(r.peek_lines(2).collect::<Vec<_>>(), [&b"ab"[..], b"cd"]);
        assert_eq!(r.buffered(), 6);
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
