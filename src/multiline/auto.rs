//! `multiline = "auto"`: the built-in rules that recognise stack traces and
//! crash reports (Java and the other JVM languages, Python, Go, Rust, Node.js,
//! .NET), so that the joiner can make one event of each.
//!
//! Owns the classification of single lines: whether a line that begins a
//! record is ordinary ([`Opening::Plain`]), a log line about a problem that a
//! trace may follow ([`Opening::Problem`], then [`trace_after`] on the next
//! line), or the first line of a trace ([`Opening::Trace`]); and, line by
//! line, whether a trace goes on ([`Trace::continues`]). It is pure and
//! synchronous. It must not hold lines, know about time, or decide record
//! limits (`max_lines`, `max_bytes`, timeouts): the framework in
//! `multiline/mod.rs` does all three.
//!
//! Cost: [`open`] runs on every line of every text log, so an ordinary line
//! costs one SIMD literal scan (`aho-corasick`'s Teddy) for the problem words
//! and for the few literals that every header contains. Regexes run only on
//! the rare lines where that scan finds a header literal, and on the lines of
//! a trace. Nothing allocates per line.
//!
//! CI systems put a prefix before each line of a job log (a GitHub Actions or
//! `kubectl logs --timestamps` timestamp, GitLab's `00O ` stream marker,
//! Jenkins' `[12:00:01] `, Buildkite's `_bk;t=` marker: the `%{CI}` forms of
//! the bundled patterns). The framework does not strip it; every test here
//! looks at the line after it.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, packed};
use regex::bytes::Regex;
use regex_automata::{Anchored, Input, meta, util::syntax};

/// Which runtime wrote a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Java,
    Python,
    Go,
    Rust,
    Node,
    DotNet,
}

/// What auto makes of a line that begins a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    /// An ordinary line: a record of its own, emitted at once.
    Plain,
    /// A log line about a problem (it contains one of the words error,
    /// exception, fatal, severe, critical, crit, panic, fail, failed, failure,
    /// warn, warning, as a word): the framework holds it, because logging
    /// frameworks print the message line and then the trace (logback `ERROR
    /// ... msg` then `java.lang.X: y`; Python's `logger.exception` prints
    /// `ERROR:root:msg` then `Traceback (most recent call last):`).
    Problem,
    /// The first line of a trace: following lines are tested with
    /// [`Trace::continues`].
    Trace(Trace),
}

/// A trace being joined: its kind and where in the trace's grammar it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    state: State,
}

impl Trace {
    pub fn kind(&self) -> Kind {
        self.state.kind()
    }

    /// Whether `line` continues this trace; updates the state. A blank line
    /// continues it while what may follow can still belong to it (Python's
    /// chained tracebacks, Go's goroutine sections, Node's `Node.js v20`
    /// trailer); the framework trims trailing blank lines from a finished
    /// record (see [`is_blank`]).
    pub fn continues(&mut self, line: &str) -> bool {
        let next = self.state.after(&Body::of(line));
        if let Some(state) = next {
            self.state = state;
        }
        next.is_some()
    }
}

/// Classifies a line that begins a record.
pub fn open(line: &str) -> Opening {
    let bytes = line.as_bytes();
    if bytes.first() == Some(&b'{') {
        // A JSON line is a whole structured record: a trace it reports sits in
        // one of its fields, and a crash after it starts with a header anyway.
        return Opening::Plain;
    }
    let found = scan(bytes);
    if found.header {
        if let Some(trace) = header(body(line)) {
            return Opening::Trace(trace);
        }
    }
    if found.problem {
        Opening::Problem
    } else {
        Opening::Plain
    }
}

/// `line` follows a one-line `Problem` record: `Some` when it begins that
/// problem's trace (it then joins the problem line).
///
/// Besides every header [`open`] knows, two formats print a trace without a
/// header line after a log line: zap's console encoder (a Go function name,
/// then its tab-indented file) and .NET's console logger (the entry's lines
/// padded with six spaces under `fail: Category[0]`).
pub fn trace_after(line: &str) -> Option<Trace> {
    let bytes = line.as_bytes();
    if bytes.first() == Some(&b'{') {
        return None;
    }
    if scan(bytes).header {
        if let Some(trace) = header(body(line)) {
            return Some(trace);
        }
    }
    // The cheap tests keep the regexes off the ordinary lines that follow
    // every `ERROR` line: a function name has a dot and no space, and a CI
    // prefix brings at most two spaces.
    if memchr::memchr(b'.', bytes).is_some()
        && memchr::memchr_iter(b' ', bytes).nth(2).is_none()
        && GO_FUNCTION.is_match(body(line).as_bytes())
    {
        return Some(Trace {
            state: State::GoStack,
        });
    }
    if CONSOLE_PAD_FINDER.find(bytes).is_some() {
        let text = body(line);
        let rest = text.strip_prefix(CONSOLE_PAD)?;
        if rest.starts_with(|c: char| !c.is_ascii_whitespace()) {
            return Some(Trace {
                state: State::ClrPadded,
            });
        }
    }
    None
}

/// Whether `line` is blank once its CI prefix is gone. A CI system prefixes
/// blank lines too (`2026-11-22T09:30:14.2307780Z `), so the framework should
/// ask this, not `str::trim`, when it drops blank lines between records and
/// trims them from the end of a record.
pub fn is_blank(line: &str) -> bool {
    let len = line.trim_ascii_end().len();
    // No CI prefix is longer: most lines are found not blank without a regex.
    len == 0 || len <= LONGEST_PREFIX && body(line).trim_ascii().is_empty()
}

// ------------------------------------------------------------------ the gate

/// The problem words, matched whole.
const PROBLEM_WORDS: [&str; 12] = [
    "error",
    "exception",
    "fatal",
    "severe",
    "critical",
    "crit",
    "panic",
    "fail",
    "failed",
    "failure",
    "warn",
    "warning",
];

/// Spellings of problem words that can also be part of a header, even inside a
/// word: `TypeError:`, `java.lang.NullPointerException`, `panic:`, `fatal
/// error:`, `thread 'main' panicked at`.
const HEADER_WORDS: [&str; 4] = ["Error", "Exception", "panic", "fatal"];

/// Literals of the headers that contain no problem word. Every pattern in
/// [`HEADERS`] contains a [`HEADER_WORDS`] spelling or one of these, so that a
/// line without any of them cannot be a header and skips the regexes.
const HEADER_LITERALS: [&str; 8] = [
    "Throwable",  // java.lang.Throwable
    "Traceback",  // Python
    "SIG",        // Go: SIGSEGV: segmentation violation
    "goroutine ", // Go: goroutine 1 [running]:
    "Unhandled",  // .NET: Unhandled exception.
    "js:",        // Node source excerpt: /app/index.js:3, .mjs:, .cjs:
    ".ts:",       // the same for TypeScript run directly
    "sx:",        // .jsx:, .tsx:
];

/// What a hit of one gate literal can mean.
#[derive(Debug, Clone, Copy)]
struct Role {
    /// The hit is a problem word (if it stands as a whole word).
    problem: bool,
    /// The hit hints at a header.
    header: bool,
}

/// One pass over the line for all gate literals: Teddy (SIMD) when the CPU
/// has it, otherwise an Aho-Corasick automaton.
///
/// The problem words enter whole, in lower, Title and UPPER case (`eRRoR` is
/// not looked for). That makes 44 literals, so Teddy runs in its "fat"
/// variant; measured on this workload, it still costs less per line than 32
/// three-letter stems in the slim variant (which finds more false hits and
/// takes longer on short lines).
enum Gate {
    Teddy(packed::Searcher),
    Automaton(AhoCorasick),
}

struct Literals {
    gate: Gate,
    /// What a hit of each literal can mean, by pattern id.
    roles: Vec<Role>,
}

static LITERALS: LazyLock<Literals> = LazyLock::new(|| Literals::new(true));

impl Literals {
    /// `simd: false` builds the automaton even where Teddy is available (for tests).
    fn new(simd: bool) -> Literals {
        let mut spellings: Vec<String> = Vec::new();
        let mut roles = Vec::new();
        for word in PROBLEM_WORDS {
            let mut title = word.to_string();
            title[..1].make_ascii_uppercase();
            for spelling in [word.to_string(), title, word.to_ascii_uppercase()] {
                roles.push(Role {
                    problem: true,
                    header: HEADER_WORDS.contains(&spelling.as_str()),
                });
                spellings.push(spelling);
            }
        }
        for literal in HEADER_LITERALS {
            roles.push(Role {
                problem: false,
                header: true,
            });
            spellings.push(literal.to_string());
        }
        // Leftmost-longest, so that `failed` is reported as `failed`, not `fail`.
        let teddy = simd
            .then(|| {
                packed::Config::new()
                    .match_kind(packed::MatchKind::LeftmostLongest)
                    .builder()
                    .extend(&spellings)
                    .build()
            })
            .flatten();
        let gate = match teddy {
            Some(searcher) => Gate::Teddy(searcher),
            None => Gate::Automaton(
                AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                    .build(&spellings)
                    .expect("the gate's literals are valid patterns"),
            ),
        };
        Literals { gate, roles }
    }

    fn scan(&self, bytes: &[u8]) -> Found {
        let mut found = Found::default();
        let mut at = 0;
        while let Some((pattern, start, end)) = self.gate.find(bytes, at) {
            let Some(role) = self.roles.get(pattern) else {
                break;
            };
            found.header |= role.header;
            found.problem |= role.problem && is_whole_word(bytes, start, end);
            if found.problem && found.header {
                break;
            }
            // From the next byte, not from `end`: a hit that is not a whole
            // word must not hide one that starts inside it.
            at = start + 1;
        }
        found
    }
}

impl Gate {
    /// The leftmost hit at or after `at`: (pattern, start, end).
    fn find(&self, haystack: &[u8], at: usize) -> Option<(usize, usize, usize)> {
        let span = aho_corasick::Span::from(at..haystack.len());
        let hit = match self {
            Gate::Teddy(searcher) => searcher.find_in(haystack, span),
            Gate::Automaton(ac) => ac.find(aho_corasick::Input::new(haystack).span(span)),
        }?;
        Some((hit.pattern().as_usize(), hit.start(), hit.end()))
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    /// A problem word stands in the line as a word.
    problem: bool,
    /// A header literal is somewhere in the line: it may be a header.
    header: bool,
}

fn scan(bytes: &[u8]) -> Found {
    LITERALS.scan(bytes)
}

/// Leftmost-longest hits make this exact: when the longest word at `start` is
/// not whole, a shorter one there ends before a letter and is not whole either.
fn is_whole_word(bytes: &[u8], start: usize, end: usize) -> bool {
    let before = start.checked_sub(1).and_then(|i| bytes.get(i));
    !before.is_some_and(|&b| is_word_byte(b)) && !bytes.get(end).is_some_and(|&b| is_word_byte(b))
}

/// ASCII word characters, and any non-ASCII byte: `errorñ` is not `error`.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

// ------------------------------------------------------------------ lines

const TS: &str = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]{1,9})?(?:Z|[+-][0-9]{2}:?[0-9]{2})?";

/// The CI prefixes, as `%{CI}` in patterns/10-ci.toml. A timestamp alone on a
/// line (a blank line of the job log) is a prefix too.
static CI_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"^(?:\[{TS}\] ?|\[[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(?:\.[0-9]+)?\] |{TS}(?: [0-9a-f]{{2}}[OE](?:\+ ?| |$)| |$)|_bk;t=[0-9]+\x07)"
    ))
});

/// An upper bound of a CI prefix's length (`[` timestamp with nanoseconds
/// and offset `] `; GitLab's timestamp and `00O+ `).
const LONGEST_PREFIX: usize = 48;

/// The line without its CI prefix and without a `\r` left by CRLF files.
fn body(line: &str) -> &str {
    let line = line.strip_suffix('\r').unwrap_or(line);
    // Only a line that starts like a prefix pays for the regex.
    if !matches!(line.as_bytes().first(), Some(b'0'..=b'9' | b'[' | b'_')) {
        return line;
    }
    match CI_PREFIX.find(line.as_bytes()) {
        Some(prefix) => line.get(prefix.end()..).unwrap_or(line),
        None => line,
    }
}

/// A line of a trace as the grammar sees it.
struct Body<'a> {
    text: &'a str,
    blank: bool,
    indented: bool,
}

impl Body<'_> {
    fn of(line: &str) -> Body<'_> {
        let text = body(line);
        let rest = text.trim_ascii_start();
        let blank = rest.is_empty();
        Body {
            text,
            blank,
            indented: !blank && rest.len() < text.len() && !starts_with_level(rest),
        }
    }

    fn starts_with(&self, prefix: &str) -> bool {
        self.text.starts_with(prefix)
    }

    fn is(&self, re: &Regex) -> bool {
        re.is_match(self.text.as_bytes())
    }
}

/// Level words that layouts pad on the left (Spring Boot's `%5p` gives ` INFO`,
/// Python's `%(levelname)8s` gives `    INFO`): once the line's timestamp is
/// taken for a CI prefix, such a log line looks indented, like a frame.
const PADDED_LEVELS: [&str; 8] = [
    "TRACE ",
    "DEBUG ",
    "INFO ",
    "WARN ",
    "WARNING ",
    "ERROR ",
    "FATAL ",
    "CRITICAL ",
];

fn starts_with_level(text: &str) -> bool {
    PADDED_LEVELS.iter().any(|level| text.starts_with(level))
}

fn regex(pattern: &str) -> Regex {
    Regex::new(&format!("(?-u){pattern}")).expect("built-in multiline regexes are valid")
}

// ------------------------------------------------------------------ headers

/// Header lines, tested anchored at the start of the line (after the CI
/// prefix), first match wins, with the state each one starts.
const HEADERS: [(&str, State); 13] = [
    (r"Traceback \(most recent call last\):$", State::PyFrames),
    // An uncaught exception group prints its box from the first line on.
    (
        r"  \+ Exception Group Traceback \(most recent call last\):$",
        State::PyGroup,
    ),
    (
        r#"Exception in thread "[^"]*" [A-Za-z_$][0-9A-Za-z_$]*(?:\.[A-Za-z_$][0-9A-Za-z_$]*)*(?::|$)"#,
        State::JvmFrames,
    ),
    // .NET Core (`Unhandled exception. `) and .NET Framework (`Unhandled Exception: `).
    (
        r"Unhandled [Ee]xception[.:] [A-Za-z_][0-9A-Za-z_`.+]*(?::|$)",
        State::ClrFrames,
    ),
    // JVM: a class name whose package starts in lower case
    // (`java.lang.IllegalStateException: msg`, `com.foo.BarError`).
    (
        r"[a-z][0-9A-Za-z_$]*(?:\.[A-Za-z_$][0-9A-Za-z_$]*)*\.[0-9A-Za-z_$]*(?:Exception|Error|Throwable)(?::|$)",
        State::JvmFrames,
    ),
    // .NET: namespaces are PascalCase (`System.InvalidOperationException: msg`).
    (
        r"[A-Z][0-9A-Za-z_`]*(?:\.[A-Za-z_][0-9A-Za-z_`]*)*\.[0-9A-Za-z_`]*(?:Exception|Error)(?::|$)",
        State::ClrFrames,
    ),
    (r"(?:panic|fatal error): ", State::GoStack),
    (r"SIG[A-Z0-9]+: ", State::GoStack),
    (r"goroutine [0-9]+ .*\]:$", State::GoStack),
    // Rust >= 1.73 puts the message on the next line; newer versions name the thread id.
    (
        r"thread '[^']*'(?: \([0-9]+\))? panicked at .*:[0-9]+:[0-9]+:$",
        State::RustMessage,
    ),
    (
        r"thread '[^']*'(?: \([0-9]+\))? panicked at '",
        State::RustNotes,
    ),
    // `Error: msg`, `TypeError: msg`, `AssertionError [ERR_ASSERTION]: msg`,
    // `Uncaught Error: msg` (no dots: dotted names are JVM or .NET above).
    (
        r"(?:Uncaught )?(?:[A-Z][0-9A-Za-z_$]*)?(?:Error|Exception)(?: \[[0-9A-Za-z_]+\])?(?::|$)",
        State::NodeStack { in_object: false },
    ),
    // Node's uncaught-exception excerpt starts with the throwing file and line alone.
    (
        r"(?:(?:file://)?/|[A-Za-z]:\\)[^ :]*\.(?:[cm]?js|jsx|tsx?):[0-9]+$",
        State::NodeSource,
    ),
];

/// All headers in one automaton that reports which one matched, without
/// allocating (`RegexSet` allocates its result on every call).
static HEADER: LazyLock<meta::Regex> = LazyLock::new(|| {
    meta::Regex::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .build_many(&HEADERS.map(|(pattern, _)| pattern))
        .expect("built-in header regexes are valid")
});

fn header(text: &str) -> Option<Trace> {
    let hit = HEADER.search(&Input::new(text).anchored(Anchored::Yes))?;
    let (_, state) = HEADERS.get(hit.pattern().as_usize())?;
    Some(Trace { state: *state })
}

// ------------------------------------------------------------------ grammar

/// Where a trace is in its runtime's grammar. Each state names what may come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// JVM: frames (`\tat`), `Caused by:`, indented `Suppressed:`, `... 3 more`.
    JvmFrames,
    /// .NET: frames (`   at`), inner exceptions (` ---> `), `--- End of ... ---`.
    ClrFrames,
    /// .NET console logger: the entry's lines, padded with six spaces.
    ClrPadded,
    /// Python: the frames of a traceback, up to the unindented exception line.
    PyFrames,
    /// Python: the box of an exception group (`  | `, `  +-+---- 1 ----`).
    PyGroup,
    /// Python: after the exception line; a blank line may lead to a chained one.
    PyRaised,
    /// Python: blank lines after an exception; the chaining sentence must follow.
    PyBlank,
    /// Python: after the chaining sentence; the next traceback must follow.
    PyChained,
    /// Go: goroutine headers, function and file lines, registers.
    GoStack,
    /// Go: after a blank line, only a new section may follow.
    GoBlank,
    /// Go: after `exit status 2` (from `go run`), nothing more.
    GoExited,
    /// Rust: after `panicked at file:line:col:`, the message line.
    RustMessage,
    /// Rust: the rest of the message (indented), then the closing note or the backtrace.
    RustNotes,
    /// Rust: backtrace frames, up to the closing note.
    RustBacktrace,
    /// Rust: after the closing note, nothing more.
    RustDone,
    /// Node excerpt: after `/app/index.js:3`, the source line.
    NodeSource,
    /// Node excerpt: the caret line under the source line.
    NodeCaret,
    /// Node excerpt: blank lines, then what was thrown (`Error: msg`).
    NodeThrown,
    /// Node: frames (`    at`) and the properties printed after them
    /// (`    at x {`, indented keys, `}`).
    NodeStack { in_object: bool },
    /// Node: after a blank line, only the `Node.js v20.1.0` trailer.
    NodeBlank,
    /// Node: after the trailer, nothing more.
    NodeDone,
}

/// The sentences between the tracebacks of chained Python exceptions.
const PYTHON_CHAINS: [&str; 2] = [
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
];

/// Python's exception line: `ValueError: msg`, `mod.sub.CustomError: msg`, `KeyboardInterrupt`.
static PYTHON_RAISED: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^[A-Za-z_][0-9A-Za-z_.]*(?::(?: .*)?)?$"));

/// A Go function line as panics print it (`main.(*T).M(0xc000010000, {0x1, 0x2})`,
/// `panic({0x45c3a0?, 0x4b6c28?})`) or as zap prints it (`github.com/x/y.(*T).M`).
const GO_FUNCTION_RE: &str = r"[^ \t(]+\(.*\)|(?:[0-9A-Za-z_.~%-]+/)*[0-9A-Za-z_~%-]+\.[A-Za-z_(*][0-9A-Za-z_.()*\[\]~%/,-]*";
const GO_SECTION_RE: &str = r"goroutine (?:[0-9]+ .*\]:|running on other thread.*)|runtime stack:|-----|SIG[A-Z0-9]+: .*|PC=0x[0-9a-f]+(?: .*)?|[a-z0-9]{1,6} +0x[0-9a-f]+";

static GO_FUNCTION: LazyLock<Regex> = LazyLock::new(|| regex(&format!("^(?:{GO_FUNCTION_RE})$")));

/// Unindented lines inside a Go section. Not `panic:`: a nested panic is
/// indented (`\tpanic: second`), an unindented one is the next crash.
static GO_LINE: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"^(?:{GO_SECTION_RE}|{GO_FUNCTION_RE}|\[signal .*\]|created by .*|\.\.\.additional frames elided\.\.\.)$"
    ))
});

/// Lines that open a new Go section after a blank line: the next goroutine,
/// the runtime stack, the register dump.
static GO_SECTION: LazyLock<Regex> = LazyLock::new(|| regex(&format!("^(?:{GO_SECTION_RE})$")));

static GO_EXIT: LazyLock<Regex> = LazyLock::new(|| regex(r"^exit status [0-9]+$"));

/// Microsoft.Extensions.Logging's console formatter pads every line of an
/// entry after the first by the width of `info: `.
const CONSOLE_PAD: &str = "      ";

static CONSOLE_PAD_FINDER: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(CONSOLE_PAD));

impl State {
    fn kind(self) -> Kind {
        use State::*;
        match self {
            JvmFrames => Kind::Java,
            ClrFrames | ClrPadded => Kind::DotNet,
            PyFrames | PyGroup | PyRaised | PyBlank | PyChained => Kind::Python,
            GoStack | GoBlank | GoExited => Kind::Go,
            RustMessage | RustNotes | RustBacktrace | RustDone => Kind::Rust,
            NodeSource | NodeCaret | NodeThrown | NodeStack { .. } | NodeBlank | NodeDone => {
                Kind::Node
            }
        }
    }

    /// The state after `line`, or `None` when `line` does not continue the trace.
    fn after(self, line: &Body) -> Option<State> {
        use State::*;
        let next = match self {
            // Exception messages can span lines, but an unindented line after
            // the header is far more often the next log line than a message's.
            JvmFrames => (line.indented
                || line.starts_with("Caused by: ")
                || line.starts_with("Wrapped by: ")
                || line.starts_with("... "))
            .then_some(JvmFrames)?,
            ClrFrames => (line.indented || line.starts_with("--- End of ")).then_some(ClrFrames)?,
            ClrPadded => (!line.blank && line.starts_with(CONSOLE_PAD)).then_some(ClrPadded)?,

            PyFrames if line.blank || line.indented => PyFrames,
            PyFrames => line.is(&PYTHON_RAISED).then_some(PyRaised)?,
            PyGroup if line.indented => PyGroup,
            PyGroup | PyRaised if line.blank => PyBlank,
            PyGroup => return None,
            // Indented lines after the exception line are its message (pydantic's errors).
            PyRaised => line.indented.then_some(PyRaised)?,
            PyBlank if line.blank => PyBlank,
            PyBlank => PYTHON_CHAINS.contains(&line.text).then_some(PyChained)?,
            PyChained if line.blank => PyChained,
            PyChained => match header(line.text)?.state {
                next @ (PyFrames | PyGroup) => next,
                _ => return None,
            },

            GoStack | GoBlank if line.blank => GoBlank,
            GoStack | GoBlank if line.is(&GO_EXIT) => GoExited,
            GoStack => (line.indented || line.is(&GO_LINE)).then_some(GoStack)?,
            GoBlank => line.is(&GO_SECTION).then_some(GoStack)?,
            GoExited => return None,

            // Whatever follows the header is the message, even a blank line.
            RustMessage => RustNotes,
            RustNotes | RustBacktrace if line.indented => self,
            RustNotes if line.starts_with("stack backtrace:") => RustBacktrace,
            RustNotes | RustBacktrace => line.starts_with("note: ").then_some(RustDone)?,
            RustDone => return None,

            NodeSource => (!line.blank).then_some(NodeCaret)?,
            NodeCaret => is_caret(line.text).then_some(NodeThrown)?,
            NodeThrown if line.blank => NodeThrown,
            NodeThrown => NodeStack { in_object: false },
            NodeStack { .. } if line.blank => NodeBlank,
            NodeStack { in_object } if line.indented => NodeStack {
                in_object: in_object || line.text.trim_end().ends_with('{'),
            },
            NodeStack { in_object: true } if line.starts_with("}") => {
                NodeStack { in_object: false }
            }
            NodeStack { in_object } if line.starts_with("(Use `node --trace-") => {
                NodeStack { in_object }
            }
            NodeStack { .. } | NodeBlank if line.starts_with("Node.js v") => NodeDone,
            NodeBlank if line.blank => NodeBlank,
            NodeStack { .. } | NodeBlank | NodeDone => return None,
        };
        Some(next)
    }
}

/// Node's caret line under the source excerpt: `    ^` or `^^^^^^^^`.
fn is_caret(text: &str) -> bool {
    let marks = text.trim_ascii();
    !marks.is_empty() && marks.bytes().all(|b| b == b'^')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A record the reference joiner made: where it starts (1-based), how
    /// many source lines it joins, and its kind when it was joined as a trace.
    #[derive(Debug)]
    struct Joined {
        first: usize,
        lines: usize,
        kind: Option<Kind>,
    }

    enum Pending {
        Nothing,
        Problem {
            first: usize,
        },
        Trace {
            trace: Trace,
            first: usize,
            lines: usize,
            blanks: usize,
        },
    }

    /// The framework's part, reduced to what auto's answers decide: no
    /// limits, no timeouts. Blank lines outside records are dropped, trailing
    /// blank lines of a record are trimmed, `trace_after` is asked only when
    /// the record so far is a single problem line.
    fn join(text: &str) -> Vec<Joined> {
        let mut out = Vec::new();
        let mut pending = Pending::Nothing;
        for (i, line) in text.lines().enumerate() {
            let number = i + 1;
            match std::mem::replace(&mut pending, Pending::Nothing) {
                Pending::Trace {
                    mut trace,
                    first,
                    lines,
                    blanks,
                } => {
                    if trace.continues(line) {
                        pending = if is_blank(line) {
                            Pending::Trace {
                                trace,
                                first,
                                lines,
                                blanks: blanks + 1,
                            }
                        } else {
                            Pending::Trace {
                                trace,
                                first,
                                lines: lines + blanks + 1,
                                blanks: 0,
                            }
                        };
                        continue;
                    }
                    out.push(Joined {
                        first,
                        lines,
                        kind: Some(trace.kind()),
                    });
                }
                Pending::Problem { first } => {
                    if let Some(trace) = trace_after(line) {
                        pending = Pending::Trace {
                            trace,
                            first,
                            lines: 2,
                            blanks: 0,
                        };
                        continue;
                    }
                    out.push(Joined {
                        first,
                        lines: 1,
                        kind: None,
                    });
                }
                Pending::Nothing => {}
            }
            if is_blank(line) {
                continue;
            }
            match open(line) {
                Opening::Plain => out.push(Joined {
                    first: number,
                    lines: 1,
                    kind: None,
                }),
                Opening::Problem => pending = Pending::Problem { first: number },
                Opening::Trace(trace) => {
                    pending = Pending::Trace {
                        trace,
                        first: number,
                        lines: 1,
                        blanks: 0,
                    }
                }
            }
        }
        match pending {
            Pending::Trace {
                trace,
                first,
                lines,
                ..
            } => out.push(Joined {
                first,
                lines,
                kind: Some(trace.kind()),
            }),
            Pending::Problem { first } => out.push(Joined {
                first,
                lines: 1,
                kind: None,
            }),
            Pending::Nothing => {}
        }
        out
    }

    /// `(lines, kind)` per record, as the `.expect` files write them.
    fn shape(records: &[Joined]) -> Vec<(usize, Option<Kind>)> {
        records.iter().map(|r| (r.lines, r.kind)).collect()
    }

    fn expected(text: &str) -> Vec<(usize, Option<Kind>)> {
        text.lines()
            .map(|line| line.split('#').next().unwrap_or_default().trim())
            .filter(|line| !line.is_empty())
            .map(|line| {
                let mut words = line.split_whitespace();
                let lines = words.next().and_then(|n| n.parse().ok());
                let kind = words.next().map(|kind| match kind {
                    "java" => Kind::Java,
                    "python" => Kind::Python,
                    "go" => Kind::Go,
                    "rust" => Kind::Rust,
                    "node" => Kind::Node,
                    "dotnet" => Kind::DotNet,
                    other => panic!("unknown kind `{other}` in an .expect file"),
                });
                (
                    lines.expect("an .expect line starts with a line count"),
                    kind,
                )
            })
            .collect()
    }

    fn fixtures() -> Vec<(String, String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/multiline");
        let mut cases: Vec<_> = std::fs::read_dir(&dir)
            .expect("fixture directory")
            .map(|entry| entry.expect("fixture entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "log"))
            .map(|log| {
                let name = log
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let text = std::fs::read_to_string(&log).expect("fixture log");
                let expect = std::fs::read_to_string(log.with_extension("expect"))
                    .unwrap_or_else(|e| panic!("{name}.expect: {e}"));
                (name, text, expect)
            })
            .collect();
        cases.sort();
        cases
    }

    #[test]
    fn fixtures_join_as_expected() {
        let cases = fixtures();
        assert!(cases.len() >= 17, "fixtures found: {}", cases.len());
        let mut failures = Vec::new();
        for (name, text, expect) in &cases {
            let records = join(text);
            if shape(&records) != expected(expect) {
                let got: Vec<String> = records
                    .iter()
                    .map(|r| format!("  line {}: {} {:?}", r.first, r.lines, r.kind))
                    .collect();
                failures.push(format!(
                    "{name}: got\n{}\nwant {:?}",
                    got.join("\n"),
                    expected(expect)
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    fn shapes(text: &str) -> Vec<(usize, Option<Kind>)> {
        shape(&join(text))
    }

    #[test]
    fn ordinary_lines_are_plain() {
        for line in [
            "2026-11-22T10:00:00.123Z INFO app started user=bob",
            "2026-11-22T10:00:00.037Z INFO [auth-gw] heartbeat ok latency=9ms mem=3375MiB goroutines=1749 ci_run_id=240338",
            "2026-11-22T10:00:00.030Z DEBUG [auth-gw] cache hit key=sha256:735771b237d047c9 size=88937728",
            r#"{"ts":"2026-11-22T10:00:00.027Z","level":"error","msg":"step package failed exit_code=1"}"#,
            "INFO:root:done",
            "main.go:12: something",
            "   Compiling serde v1.0.0",
            "2026-11-22T10:00:00Z INFO received SIGTERM, draining",
            "Traceback follows below",
            "see /app/index.js:3 for details",
            "ErrorHandler registered for /api",
            "",
            "2026-11-22T09:30:14.2307780Z ",
        ] {
            assert_eq!(open(line), Opening::Plain, "{line}");
        }
    }

    #[test]
    fn problem_words_are_whole_words() {
        for line in [
            "2026-11-22T10:00:00.075Z ERROR [auth-gw] connection refused",
            "level=error msg=\"db down\"",
            "test tests::parses ... FAILED",
            "Failure: expected 2",
            "crit: disk full",
            "[WARNING] deprecated flag",
            "warn: Orders.Controller[0]",
            "kernel panic - not syncing",
            "SEVERE: request failed",
            "2026-11-22 INFO Error budget ok",
            "error: could not compile `logward`",
            "error[E0425]: cannot find value `y` in this scope",
            "critical section entered", // a word is a word
        ] {
            assert_eq!(open(line), Opening::Problem, "{line}");
        }
        for line in [
            "errorless run",
            "terror in the logs",
            "no_errors=0",
            "failures: 0",
            "warnings=0 unfailing critically",
            "Erroré",
            "FAILEDX",
        ] {
            assert_eq!(open(line), Opening::Plain, "{line}");
        }
    }

    #[test]
    fn every_header_opens_a_trace_of_its_kind() {
        let cases = [
            (
                r#"Exception in thread "main" java.lang.IllegalStateException: boom"#,
                Kind::Java,
            ),
            (
                r#"Exception in thread "pool-1-thread-2" Main$BadThing"#,
                Kind::Java,
            ),
            (
                "java.lang.IllegalStateException: could not save order 42",
                Kind::Java,
            ),
            ("com.foo.BarException", Kind::Java),
            ("java.lang.OutOfMemoryError: Java heap space", Kind::Java),
            ("java.lang.Throwable: trace", Kind::Java),
            (
                "kotlin.UninitializedPropertyAccessException: lateinit property x",
                Kind::Java,
            ),
            ("Traceback (most recent call last):", Kind::Python),
            (
                "  + Exception Group Traceback (most recent call last):",
                Kind::Python,
            ),
            (
                "panic: runtime error: index out of range [5] with length 3",
                Kind::Go,
            ),
            (
                "panic: assignment to entry in nil map [recovered]",
                Kind::Go,
            ),
            (
                "fatal error: all goroutines are asleep - deadlock!",
                Kind::Go,
            ),
            ("SIGSEGV: segmentation violation", Kind::Go),
            ("SIGQUIT: quit", Kind::Go),
            ("goroutine 1 [running]:", Kind::Go),
            (
                "goroutine 18 gp=0xc000102380 m=nil [chan receive, 2 minutes]:",
                Kind::Go,
            ),
            ("thread 'main' panicked at src/main.rs:2:5:", Kind::Rust),
            (
                "thread 'main' (12182) panicked at src/main.rs:4:32:",
                Kind::Rust,
            ),
            (
                "thread 'main' panicked at 'boom', src/main.rs:2:5",
                Kind::Rust,
            ),
            ("Error: config not found", Kind::Node),
            (
                "TypeError: Cannot read properties of null (reading 'foo')",
                Kind::Node,
            ),
            (
                "AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:",
                Kind::Node,
            ),
            ("Uncaught Error: boom", Kind::Node),
            ("Error", Kind::Node),
            ("/app/index.js:3", Kind::Node),
            ("file:///app/esm.mjs:2", Kind::Node),
            ("/app/src/server.ts:14", Kind::Node),
            ("/app/web/App.tsx:7", Kind::Node),
            ("/app/lib/util.cjs:120", Kind::Node),
            (r"C:\app\index.js:3", Kind::Node),
            (
                "Unhandled exception. System.InvalidOperationException: Order 42",
                Kind::DotNet,
            ),
            ("Unhandled Exception: System.Exception: boom", Kind::DotNet),
            (
                "System.NullReferenceException: Object reference not set",
                Kind::DotNet,
            ),
        ];
        for (line, kind) in cases {
            match open(line) {
                Opening::Trace(trace) => assert_eq!(trace.kind(), kind, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
            assert_eq!(
                trace_after(line).map(|t| t.kind()),
                Some(kind),
                "after a problem: {line}"
            );
        }
    }

    #[test]
    fn headers_behind_ci_prefixes_open_traces() {
        for prefix in [
            "2026-11-22T09:30:14.2307780Z ",
            "2026-11-22T09:58:40.947334Z 00O ",
            "2026-11-22T09:58:40.947334Z 00E ",
            "2026-11-22T09:58:40.947334Z 00O+",
            "[2026-11-22T09:30:14Z] ",
            "[12:00:01] ",
            "_bk;t=1700000000000\x07",
        ] {
            let line = format!("{prefix}java.lang.IllegalStateException: boom");
            let Opening::Trace(mut trace) = open(&line) else {
                panic!("{line:?}");
            };
            assert!(trace.continues(&format!("{prefix}\tat com.example.App.main(App.java:21)")));
            assert!(
                !trace.continues(&format!("{prefix}INFO next request")),
                "{prefix:?}"
            );
        }
    }

    #[test]
    fn log_line_then_java_trace_joins() {
        let text = "2026-11-22 10:00:00,944 ERROR [main] c.e.App - startup failed\n\
                    java.lang.IllegalStateException: boom\n\
                    \tat com.example.App.main(App.java:21)\n\
                    Caused by: java.io.IOException: disk\n\
                    \t... 1 more\n\
                    2026-11-22 10:00:01,000 INFO [main] c.e.App - retrying\n";
        assert_eq!(shapes(text), [(5, Some(Kind::Java)), (1, None)]);
    }

    #[test]
    fn python_chained_traceback_is_one_record() {
        let text = "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n\
                    KeyError: 'port'\n\n\
                    During handling of the above exception, another exception occurred:\n\n\
                    Traceback (most recent call last):\n  File \"a.py\", line 3, in <module>\n\
                    ValueError: port missing\n\n\
                    INFO:root:done\n";
        // The blank line after the last exception is trimmed, and the log line stands alone.
        assert_eq!(shapes(text), [(9, Some(Kind::Python)), (1, None)]);
    }

    #[test]
    fn ordinary_line_after_trace_starts_a_new_record() {
        let next = "2026-11-22T10:00:01Z INFO next request";
        let traces: [&[&str]; 6] = [
            &["java.lang.IllegalStateException: x", "\tat a.B.c(B.java:1)"],
            &[
                "Traceback (most recent call last):",
                "  File \"a.py\", line 1, in <module>",
                "ValueError: x",
            ],
            &[
                "panic: x",
                "",
                "goroutine 1 [running]:",
                "main.main()",
                "\t/app/main.go:4 +0x25",
            ],
            &[
                "thread 'main' panicked at src/main.rs:2:5:",
                "boom",
                "note: run with `RUST_BACKTRACE=1`",
            ],
            &["TypeError: x", "    at f (/app/a.js:1:2)"],
            &["System.Exception: x", "   at A.B() in /src/A.cs:line 3"],
        ];
        for lines in traces {
            let Opening::Trace(mut trace) = open(lines[0]) else {
                panic!("{lines:?}");
            };
            for line in &lines[1..] {
                assert!(trace.continues(line), "{line:?} in {lines:?}");
            }
            assert!(!trace.continues(next), "{lines:?}");
            assert!(!trace.continues("main.go:12: something"), "{lines:?}");
            assert!(!trace.continues("panic: the next crash"), "{lines:?}");
        }
    }

    #[test]
    fn cargo_output_is_not_a_trace() {
        let text = "   Compiling serde v1.0.0\n\
                    error[E0425]: cannot find value `y` in this scope\n\
                    \x20--> src/main.rs:2:39\n\
                    \x20 |\n\
                    2 | fn main() { let x = 1; println!(\"{}\", y); }\n\
                    \x20 |                                       ^\n\
                    warning: unused import: `std::io::Write`\n\
                    \x20 = note: `#[warn(unused_imports)]` on by default\n\
                    error: could not compile `ct` (bin \"ct\") due to 1 previous error\n\
                    \x20   Finished `test` profile [unoptimized + debuginfo] target(s) in 0.44s\n\
                    \x20    Running unittests src/main.rs (target/debug/deps/ct-36c3493498e51e8a)\n";
        assert!(join(text).iter().all(|r| r.lines == 1 && r.kind.is_none()));
    }

    #[test]
    fn blank_lines_continue_only_where_a_section_may_follow() {
        let blank_continues = |head: &str, body: &[&str]| {
            let Opening::Trace(mut trace) = open(head) else {
                panic!("{head}");
            };
            body.iter().all(|line| trace.continues(line)) && trace.continues("")
        };
        assert!(!blank_continues(
            "java.lang.IllegalStateException: y",
            &["\tat a.B.c(B.java:1)"]
        ));
        assert!(!blank_continues("System.Exception: x", &["   at A.B()"]));
        assert!(blank_continues(
            "Traceback (most recent call last):",
            &["  File \"a\", line 1", "E: x"]
        ));
        assert!(blank_continues("panic: x", &[]));
        assert!(blank_continues("Error: x", &["    at f (/a.js:1:2)"]));
        assert!(!blank_continues(
            "Error: x",
            &["    at f (/a.js:1:2)", "", "Node.js v20.20.2"]
        ));
        assert!(!blank_continues(
            "thread 'main' panicked at src/main.rs:2:5:",
            &[
                "boom",
                "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"
            ]
        ));
    }

    #[test]
    fn trace_after_a_problem_needs_a_trace_line() {
        for line in [
            "2026-11-22T10:00:01Z INFO next request",
            "INFO:worker:starting job id=8",
            "main.go:12: something",
            " --> src/main.rs:2:39",
            "    Finished `test` profile [unoptimized + debuginfo] target(s) in 0.44s",
            "Done.",
            "",
        ] {
            assert_eq!(trace_after(line), None, "{line:?}");
        }
        // zap's console stack and the .NET console logger's padded lines.
        assert_eq!(
            trace_after("main.(*Server).createOrder").map(|t| t.kind()),
            Some(Kind::Go)
        );
        assert_eq!(
            trace_after("net/http.HandlerFunc.ServeHTTP").map(|t| t.kind()),
            Some(Kind::Go)
        );
        assert_eq!(
            trace_after("      An unhandled exception has occurred.").map(|t| t.kind()),
            Some(Kind::DotNet)
        );
        assert_eq!(trace_after("         at A.B()"), None);
    }

    #[test]
    fn crlf_lines_are_read_without_the_carriage_return() {
        let text = "java.lang.IllegalStateException: boom\r\n\tat a.B.c(B.java:1)\r\n\r\nnext\r\n";
        assert_eq!(shapes(text), [(2, Some(Kind::Java)), (1, None)]);
        let Opening::Trace(mut trace) = open("Traceback (most recent call last):\r") else {
            panic!("CRLF header");
        };
        assert!(trace.continues("  File \"a.py\", line 1, in <module>\r"));
        assert!(trace.continues("ValueError: x\r"));
    }

    #[test]
    fn ci_prefixed_blank_lines_are_blank() {
        for line in [
            "",
            "   ",
            "2026-11-22T09:30:14.2307780Z ",
            "2026-11-22T09:30:14.2307780Z",
            "2026-11-22T09:58:40.947334Z 00O ",
            "[2026-11-22T09:41:40.118Z] ",
            "[12:00:01] ",
            "[2026-11-22T09:30:14.123456789+00:00] ",
            "2026-11-22T09:30:14.123456789+00:00 0fE+ ",
            "_bk;t=17000000000000000000\x07",
        ] {
            assert!(line.trim_end().len() <= LONGEST_PREFIX);
            assert!(is_blank(line), "{line:?}");
        }
        assert!(!is_blank("2026-11-22T09:30:14.2307780Z x"));
        assert!(!is_blank("2026-11-22 INFO"));
    }

    #[test]
    fn padded_level_after_a_timestamp_is_not_a_frame() {
        // Spring Boot's `%5p`: ` INFO` after the timestamp, which is taken for a CI prefix.
        let Opening::Trace(mut trace) = open("java.lang.IllegalStateException: boom") else {
            panic!("header");
        };
        assert!(trace.continues("2026-11-22T10:00:03.544Z \tat com.example.App.main(App.java:21)"));
        assert!(!trace.continues("2026-11-22T10:00:03.551Z  INFO 4242 --- [main] c.e.App : next"));
        assert!(!trace.continues("2026-11-22 10:00:03,551     INFO next"));
    }

    #[test]
    fn gate_without_simd_finds_the_same() {
        let automaton = Literals::new(false);
        assert!(matches!(automaton.gate, Gate::Automaton(_)));
        for (_, text, _) in fixtures() {
            for line in text.lines() {
                assert_eq!(
                    automaton.scan(line.as_bytes()),
                    scan(line.as_bytes()),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn malformed_input_is_classified_without_panicking() {
        let long = "x".repeat(100_000);
        for line in [
            "\u{feff}Traceback",
            "é",
            "[",
            "2026-11-22T",
            "_bk;t=",
            "thread '",
            long.as_str(),
        ] {
            let _ = open(line);
            let _ = trace_after(line);
            for state in [
                State::PyFrames,
                State::GoStack,
                State::NodeSource,
                State::RustMessage,
            ] {
                let _ = (Trace { state }).continues(line);
            }
        }
    }
}
