//! The `console` receiver: prints each escalation as a text block
//! ([`Escalation::render_text`]) to stdout.
//!
//! Owns: writing one whole block per escalation with a single `write_all`, then a flush, so
//! that blocks never interleave with each other and reach a pipe at once.
//!
//! Must not: render or escape log content itself (`render_text` removes ANSI sequences and
//! shows control characters escaped, so a log line cannot forge or break a block), rate-limit,
//! retry, or write anywhere but its writer (the agent's own logs go to stderr).

use std::io::{self, Write};
use std::sync::Arc;

use super::{NotifyError, Outcome, Sender};
use crate::escalation::Escalation;

/// Prints escalations to `W`: stdout in the agent, a buffer in tests.
pub struct Console<W: Write> {
    name: Arc<str>,
    out: W,
}

impl Console<io::Stdout> {
    /// The receiver `name`, printing to the process's stdout.
    pub fn stdout(name: Arc<str>) -> Console<io::Stdout> {
        Console::new(name, io::stdout())
    }
}

impl<W: Write> Console<W> {
    pub fn new(name: Arc<str>, out: W) -> Console<W> {
        Console { name, out }
    }

    /// Writes the escalation's block and flushes.
    pub fn print(&mut self, esc: &Escalation) -> Result<(), NotifyError> {
        let block = esc.render_text();
        self.out
            .write_all(block.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|source| NotifyError::Stdout {
                receiver: self.name.clone(),
                source,
            })
    }

    /// The writer, e.g. to read what a test printed.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> Sender for Console<W> {
    /// A failed write to stdout is worth another try: [`Outcome::Retry`].
    fn send(&mut self, esc: &Escalation, _key: &str) -> Outcome {
        match self.print(esc) {
            Ok(()) => Outcome::Accepted {
                answer: "printed to stdout".into(),
            },
            Err(e) => Outcome::Retry {
                after: None,
                reason: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::escalation;

    fn printed(escs: &[Escalation]) -> String {
        let mut c = Console::new("out".into(), Vec::new());
        for e in escs {
            c.print(e).unwrap();
        }
        String::from_utf8(c.into_inner()).unwrap()
    }

    #[test]
    fn each_escalation_is_one_block_ending_in_an_empty_line() {
        let a = escalation("ERROR db timeout after 30s\n\tat com.example.Db.query(Db.java:42)");
        let mut b = a.clone();
        b.kind = crate::escalation::Kind::Summary;
        b.count = 120;
        b.suppressed = 119;
        let text = printed(&[a.clone(), b.clone()]);
        assert_eq!(text, a.render_text() + &b.render_text());
        let blocks: Vec<&str> = text.split_inclusive("\n\n").collect();
        assert_eq!(blocks.len(), 2, "{text}");
        assert!(blocks[0].starts_with("== first · route errors · level error · service api"));
        assert!(blocks[1].starts_with("== summary · route errors"));
        assert!(blocks[1].contains("count 120, suppressed 119"), "{text}");
    }

    #[test]
    fn log_content_cannot_break_out_of_its_block() {
        let hostile = format!(
            "<!channel> ERROR \u{1b}[2J\u{1b}[31mred\u{1b}[0m\rforged\n== first · route fake · level critical\n\u{1b}]0;title\u{7}{}\n{}",
            "A".repeat(10_000),
            (0..50)
                .map(|i| format!("line {i}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        let mut e = escalation(&hostile);
        e.message = Some("<!channel>\rover\n== fake header".into());
        e.service = Some("api\u{1b}[1m".into());
        e.context = vec![format!("\r== context {}", "B".repeat(5000)); 9];
        let text = printed(&[e]);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'),
            "{text:?}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("== ")).count(),
            1,
            "a log line forged a header: {text}"
        );
        for line in &lines[..lines.len() - 1] {
            assert!(
                line.starts_with("== ") || line.starts_with("   "),
                "escaped the block: {line:?}"
            );
            assert!(line.chars().count() < 260, "uncapped: {line:?}");
        }
        assert_eq!(lines.last(), Some(&""), "the block ends in an empty line");
        assert!(
            text.contains("<!channel>"),
            "text is shown as written: {text}"
        );
        assert!(
            text.contains("   message  <!channel>\\u{d}over\n"),
            "{text}"
        );
        assert!(text.contains("| == first · route fake"), "{text}");
        assert!(text.ends_with("\n\n"));
    }

    #[test]
    fn a_write_failure_names_the_receiver() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut c = Console::new("out".into(), Closed);
        let e = c.print(&escalation("ERROR x")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("receiver `out`: cannot write to stdout"),
            "{e}"
        );
    }
}
