//! Stack traces: what identifies a crash is its exception type and the top
//! frames of its stack, not its message (which carries ids and user input).
//!
//! This file owns recognising a multiline record as a trace of one of six
//! runtimes (Java and the JVM languages, Python, Go, Rust, Node, .NET) and
//! reducing it to a `TraceSignature`. It must not mask messages (it masks
//! function names and file references only), hash, or keep state.
//!
//! Rules common to every runtime (docs/fingerprints.md has them per language):
//! - frames are listed innermost first; frames of the runtime's own library
//!   and internals are skipped (`java.`, `jdk.`, `sun.`, `node:internal`,
//!   `runtime.`, `std::`/`core::`, `System.`...), unless nothing else is left;
//! - a frame is `function (file:<num>)`: the file is its base name (the
//!   directories differ between hosts, checkouts and containers), line and
//!   column numbers are masked (they move with every edit of the file), and the
//!   function name is masked like a message (`lambda$main$0` →
//!   `lambda$main$<num>`, `0x...` of generated classes → `<num>`);
//! - a chain of exceptions is reduced to one exception: the root cause for the
//!   JVM and .NET (where frameworks wrap everything in their own exceptions),
//!   the last traceback for Python (the exception that finally escaped).

use super::mask;

/// Frames kept in a signature unless the caller asks for another number.
pub const DEFAULT_FRAMES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceKind {
    Java,
    Python,
    Go,
    Rust,
    Node,
    Dotnet,
}

impl TraceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceKind::Java => "java",
            TraceKind::Python => "python",
            TraceKind::Go => "go",
            TraceKind::Rust => "rust",
            TraceKind::Node => "node",
            TraceKind::Dotnet => "dotnet",
        }
    }
}

/// What identifies a crash: the exception type and the top frames, innermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSignature {
    pub kind: TraceKind,
    pub exception: String,
    pub frames: Vec<String>,
}

impl TraceSignature {
    /// The text fingerprinted (and shown as `template`) for a trace:
    /// `kind: exception`, then one `  at frame` line per frame.
    pub fn key(&self) -> String {
        let mut out = format!("{}: {}", self.kind.as_str(), self.exception);
        for f in &self.frames {
            out.push_str("\n  at ");
            out.push_str(f);
        }
        out
    }
}

/// The signature of a multiline record (lines joined with `\n`), with the top
/// `DEFAULT_FRAMES` frames; `None` when the record is not a stack trace.
pub fn signature(record: &str) -> Option<TraceSignature> {
    signature_with(record, DEFAULT_FRAMES)
}

/// The signature with at most `max_frames` frames.
pub fn signature_with(record: &str, max_frames: usize) -> Option<TraceSignature> {
    if !record.contains('\n') {
        return None;
    }
    let lines: Vec<&str> = record.lines().collect();
    let (kind, exception, frames) = if let Some(tb) = lines
        .iter()
        .rposition(|l| l.trim() == "Traceback (most recent call last):")
    {
        python(&lines[tb + 1..])
    } else if lines.iter().any(|l| is_goroutine_header(l)) {
        go(&lines)?
    } else if let Some(p) = lines
        .iter()
        .position(|l| l.starts_with("thread '") && l.contains(" panicked at "))
    {
        rust(&lines, p)
    } else {
        at_frames(&lines)?
    };
    let signature = TraceSignature {
        kind,
        exception,
        frames: top(frames, max_frames),
    };
    (!signature.frames.is_empty()).then_some(signature)
}

struct Frame {
    text: String,
    /// A frame of the runtime's library or internals.
    internal: bool,
}

impl Frame {
    fn new(function: &str, file: &str, internal: bool) -> Frame {
        let function = mask::template(function.trim());
        let text = match (function.is_empty(), file.is_empty()) {
            (true, _) => file.to_string(),
            (false, true) => function,
            (false, false) => format!("{function} ({file})"),
        };
        Frame { text, internal }
    }
}

/// The first `n` frames that are not internal; all frames count if every one is.
fn top(frames: Vec<Frame>, n: usize) -> Vec<String> {
    let any_own = frames.iter().any(|f| !f.internal);
    frames
        .into_iter()
        .filter(|f| !any_own || !f.internal)
        .take(n)
        .map(|f| f.text)
        .collect()
}

/// `dir/File.java` with `numbers` masked line/column numbers: `File.java:<num>`.
fn file_ref(path: &str, numbers: usize) -> String {
    let base = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let mut out = String::with_capacity(base.len() + 6 * numbers);
    out.push_str(base);
    for _ in 0..numbers {
        out.push_str(":<num>");
    }
    out
}

// ---- the exception line -------------------------------------------------------------------

/// The exception type a line names, if it names one clearly: a qualified name
/// (`java.lang.IllegalStateException`) or one ending in `Exception`, `Error`...
/// Log prefixes (`Exception in thread "main"`, `Unhandled exception.`,
/// `Caused by:`, ` ---> `) are skipped.
fn strong_type(line: &str) -> Option<String> {
    let mut parts = line.trim().split(": ");
    // The type is in the text before one of the first few `: ` (the rest is the message).
    for _ in 0..3 {
        let part = parts.next()?;
        let mut words = part.split_whitespace().rev().peekable();
        let code = words
            .next_if(|w| w.len() > 2 && w.starts_with('[') && w.ends_with(']'))
            .filter(|w| {
                w[1..w.len() - 1]
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
            });
        if let Some(t) = words.find(|w| is_type_name(w)) {
            let named = t.contains('.')
                || [
                    "Exception",
                    "Error",
                    "Throwable",
                    "Interrupt",
                    "Exit",
                    "Fault",
                    "Failure",
                ]
                .iter()
                .any(|s| t.ends_with(s));
            if named {
                return Some(match code {
                    Some(c) => format!("{t} {c}"),
                    None => t.to_string(),
                });
            }
        }
    }
    None
}

/// The exception type of the line that introduces a trace: a clear type name,
/// else the last name before the first `: `, else the masked line.
fn exception_type(line: &str) -> String {
    if let Some(t) = strong_type(line) {
        return t;
    }
    let head = line.trim().split(": ").next().unwrap_or_default();
    let head = head.strip_prefix("Caused by:").unwrap_or(head).trim();
    match head.split_whitespace().next_back() {
        Some(w) if is_type_name(w) => w.to_string(),
        _ => mask::template(head),
    }
}

/// The exception line above the first frame: the nearest of the few lines
/// above that names a type clearly (a message may span lines), else the line
/// right above.
fn header_type(lines: &[&str], first_frame: usize) -> String {
    let above = lines[..first_frame]
        .iter()
        .rev()
        .filter(|l| !l.trim().is_empty());
    if let Some(t) = above.clone().take(8).find_map(|l| strong_type(l)) {
        return t;
    }
    above.map(|l| exception_type(l)).next().unwrap_or_default()
}

fn is_type_name(w: &str) -> bool {
    let mut b = w.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b'$')
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'.'))
        && !w.ends_with('.')
}

// ---- Python -------------------------------------------------------------------------------

/// The lines after the last `Traceback (most recent call last):`.
fn python(lines: &[&str]) -> (TraceKind, String, Vec<Frame>) {
    let mut frames = Vec::new();
    let mut last_frame = 0;
    for (i, l) in lines.iter().enumerate() {
        if let Some(f) = python_frame(l) {
            frames.push(f);
            last_frame = i;
        }
    }
    frames.reverse();
    let exception = lines
        .iter()
        .skip(last_frame + 1)
        .find(|l| !l.is_empty() && !l.starts_with([' ', '\t']))
        .map(|l| exception_type(l))
        .unwrap_or_default();
    (TraceKind::Python, exception, frames)
}

/// `  File "/app/x.py", line 12, in handle`
fn python_frame(line: &str) -> Option<Frame> {
    let rest = line.trim_start().strip_prefix("File \"")?;
    let (path, rest) = rest.split_once("\", line ")?;
    let function = rest.split_once(", in ").map_or("", |(_, f)| f);
    let internal = path.starts_with("<frozen")
        || (path.contains("/lib/python") && !path.contains("-packages/"));
    Some(Frame::new(function, &file_ref(path, 1), internal))
}

// ---- Go -----------------------------------------------------------------------------------

fn is_goroutine_header(l: &str) -> bool {
    l.starts_with("goroutine ") && l.ends_with("]:")
}

/// `panic: ...` (or `fatal error: ...`), then the panicking goroutine's frames.
fn go(lines: &[&str]) -> Option<(TraceKind, String, Vec<Frame>)> {
    let p = lines
        .iter()
        .position(|l| l.starts_with("panic: ") || l.starts_with("fatal error: "))?;
    let exception = go_exception(lines[p]);
    let g = p + lines[p..].iter().position(|l| is_goroutine_header(l))?;
    let mut frames = Vec::new();
    let mut function: Option<&str> = None;
    for l in &lines[g + 1..] {
        if l.trim().is_empty() || l.starts_with("created by ") {
            break; // the end of the panicking goroutine, or who started it (not its stack)
        }
        if let Some(file_line) = l.strip_prefix('\t') {
            let Some(f) = function.take() else { continue };
            let loc = file_line.split(" +0x").next().unwrap_or(file_line);
            let path = loc.rsplit_once(':').map_or(loc, |(p, _)| p);
            let internal = f.starts_with("runtime.") || f == "panic" || f.starts_with("testing.");
            frames.push(Frame::new(f, &file_ref(path, 1), internal));
        } else if l.ends_with(')') {
            function = l.rfind('(').map(|i| &l[..i]);
        }
    }
    Some((TraceKind::Go, exception, frames))
}

/// Go panics have no type: runtime errors name their kind, a panic with a
/// program's own message is just `panic` (its frames tell it apart).
fn go_exception(line: &str) -> String {
    let line = line.trim_end().trim_end_matches(" [recovered]");
    if let Some(m) = line.strip_prefix("fatal error: ") {
        return format!("fatal error: {}", mask::template(m));
    }
    let m = line.strip_prefix("panic: ").unwrap_or(line);
    if m.starts_with("runtime error: ") || m.starts_with("interface conversion: ") {
        mask::template(m)
    } else {
        "panic".to_string()
    }
}

// ---- Rust ---------------------------------------------------------------------------------

/// `thread 'main' (1234) panicked at src/main.rs:5:13:`, then the backtrace if there is one.
fn rust(lines: &[&str], p: usize) -> (TraceKind, String, Vec<Frame>) {
    let head = lines[p];
    let after = head.split_once(" panicked at ").map_or("", |(_, a)| a);
    // Before Rust 1.73 the message came first: `panicked at 'msg', src/main.rs:2:5`.
    let location = match after.strip_prefix('\'') {
        Some(old) => old.rsplit_once("', ").map_or("", |(_, l)| l),
        None => after.strip_suffix(':').unwrap_or(after),
    };
    let message = match after.strip_prefix('\'') {
        Some(old) => old.rsplit_once("', ").map_or(old, |(m, _)| m),
        None => lines.get(p + 1).copied().unwrap_or_default(),
    };
    let mut frames = Vec::new();
    if let Some(path) = location.split(':').next().filter(|p| !p.is_empty()) {
        frames.push(Frame::new("", &rust_file(path), false));
    }
    let mut function: Option<String> = None;
    let bt = lines.iter().position(|l| l.trim() == "stack backtrace:");
    for l in bt.map_or(&[][..], |b| &lines[b + 1..]) {
        let t = l.trim_start();
        if let Some(loc) = t.strip_prefix("at ") {
            if let Some(f) = function.take() {
                let path = loc.split(':').next().unwrap_or(loc);
                let internal = rust_internal(&f);
                frames.push(Frame::new(&f, &rust_file(path), internal));
            }
        } else if let Some((n, f)) = t.split_once(": ") {
            if !n.bytes().all(|c| c.is_ascii_digit()) {
                break; // `note: ...`: the backtrace is over
            }
            if let Some(f) = function.replace(rust_function(f)) {
                let internal = rust_internal(&f);
                frames.push(Frame::new(&f, "", internal));
            }
        }
    }
    if let Some(f) = function {
        let internal = rust_internal(&f);
        frames.push(Frame::new(&f, "", internal));
    }
    (TraceKind::Rust, rust_exception(message), frames)
}

/// Panics have no type: the standard library's own messages name their kind
/// (`called \`Option::unwrap()\` on a \`None\` value`, `index out of bounds`),
/// a panic with a program's own message is just `panic`.
fn rust_exception(message: &str) -> String {
    const STD: [&str; 14] = [
        "called `Result::unwrap()` on an `Err` value",
        "called `Result::unwrap_err()` on an `Ok` value",
        "called `Option::unwrap()` on a `None` value",
        "index out of bounds",
        "explicit panic",
        "not implemented",
        "not yet implemented",
        "internal error: entered unreachable code",
        "assertion `left == right` failed",
        "assertion `left != right` failed",
        "assertion failed",
        "byte index",
        "range end index",
        "range start index",
    ];
    let message = message.trim();
    if let Some(kind) = STD.iter().find(|k| message.starts_with(*k)) {
        return format!("panic: {kind}");
    }
    match message.strip_prefix("attempt to ") {
        Some(op) if op.ends_with("overflow") || op.ends_with("by zero") => {
            format!("panic: {message}")
        }
        _ => "panic".to_string(),
    }
}

/// A backtrace symbol without address (`0x55d0 - `), hash (`::h1a2b...`) and
/// crate disambiguators (`std[e282...]`).
fn rust_function(f: &str) -> String {
    let f = f.split_once(" - ").map_or(f, |(addr, f)| {
        if addr.trim_start().starts_with("0x") {
            f
        } else {
            addr
        }
    });
    let f = match f.rsplit_once("::h") {
        Some((head, h)) if h.len() == 16 && h.bytes().all(|c| c.is_ascii_hexdigit()) => head,
        _ => f,
    };
    let mut out = String::with_capacity(f.len());
    let mut rest = f;
    while let Some(open) = rest.find('[') {
        let close = rest[open..].find(']').map(|c| open + c);
        match close {
            Some(c) if rest[open + 1..c].bytes().all(|b| b.is_ascii_hexdigit()) && c > open + 1 => {
                out.push_str(&rest[..open]);
                rest = &rest[c + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn rust_internal(f: &str) -> bool {
    let bare = f.trim_start_matches(['<', '&']).trim_start_matches("dyn ");
    [
        "std::",
        "core::",
        "alloc::",
        "__rustc::",
        "rust_begin_unwind",
        "__rust_",
        "_start",
        "__libc_start",
    ]
    .iter()
    .any(|p| bare.starts_with(p))
        || matches!(
            f,
            "main" | "<unknown>" | "start_thread" | "clone" | "clone3"
        )
}

/// Rust prints the crate's own paths relative (`src/main.rs`, `./src/main.rs`)
/// in locations and short backtraces, and absolute in full backtraces: both
/// are cut to start at their last `src/` (the function names are qualified by
/// crate and module already); other absolute paths to their base name.
fn rust_file(path: &str) -> String {
    let path = path.trim().trim_start_matches("./");
    let kept = match path.rfind("/src/") {
        Some(s) => &path[s + 1..],
        None if path.starts_with('/') => path.rsplit('/').next().unwrap_or(path),
        None => path,
    };
    mask::template(&format!("{kept}:0:0"))
}

// ---- Java, Node, .NET: `at ...` frames ----------------------------------------------------

fn at_frames(lines: &[&str]) -> Option<(TraceKind, String, Vec<Frame>)> {
    let (first, kind) = lines.iter().enumerate().find_map(|(i, l)| {
        let rest = l.trim_start().strip_prefix("at ")?;
        let kind = if java_frame(rest).is_some() {
            TraceKind::Java
        } else if node_frame(rest).is_some() {
            TraceKind::Node
        } else if dotnet_frame(rest).is_some() {
            TraceKind::Dotnet
        } else {
            return None;
        };
        Some((i, kind))
    })?;
    Some(match kind {
        TraceKind::Java => java(lines, first),
        TraceKind::Dotnet => dotnet(lines, first),
        _ => {
            let frames = lines[first..]
                .iter()
                .filter_map(|l| node_frame(l.trim_start().strip_prefix("at ")?))
                .collect();
            (TraceKind::Node, header_type(lines, first), frames)
        }
    })
}

/// `com.x.Y.m(Y.java:42)`, `java.base/java.lang.Integer.parseInt(Integer.java:668)`,
/// `app//com.x.Y.m(Y.java:1) ~[app.jar:1.0]`, `com.x.Y.m(Native Method)`.
fn java_frame(rest: &str) -> Option<Frame> {
    let open = rest.find('(')?;
    let close = open + rest[open..].find(')')?;
    let (function, inside) = (&rest[..open], &rest[open + 1..close]);
    if function.contains(' ') || !function.contains('.') {
        return None;
    }
    let file = match inside {
        "Native Method" | "Unknown Source" => inside.to_string(),
        _ => {
            let (name, line) = inside.split_once(':').unwrap_or((inside, ""));
            let ext_ok = name.rsplit_once('.').is_some_and(|(stem, ext)| {
                !stem.is_empty()
                    && !ext.is_empty()
                    && ext.bytes().all(|c| c.is_ascii_alphanumeric())
            });
            if !ext_ok || name.contains(' ') || !line.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            file_ref(name, usize::from(!line.is_empty()))
        }
    };
    // Class loader and module names (`app//`, `java.base@17/`) are not the class.
    let mut function = function;
    for _ in 0..2 {
        match function.split_once('/') {
            Some((prefix, rest)) if !prefix.contains('$') => function = rest,
            _ => break,
        }
    }
    let internal = ["java.", "javax.", "jdk.", "sun.", "com.sun."]
        .iter()
        .any(|p| function.starts_with(p));
    Some(Frame::new(function, &file, internal))
}

struct JavaSegment {
    exception: String,
    frames: Vec<Frame>,
    /// `... N more`: the last N frames of the enclosing trace complete this one.
    more: usize,
}

/// The root cause (the last `Caused by:`) and its whole stack: its own frames
/// and the ones it shares with the exception that wraps it.
fn java(lines: &[&str], first: usize) -> (TraceKind, String, Vec<Frame>) {
    let indent = &lines[first][..lines[first].len() - lines[first].trim_start().len()];
    let mut done: Vec<JavaSegment> = Vec::new();
    let mut seg = JavaSegment {
        exception: header_type(lines, first),
        frames: Vec::new(),
        more: 0,
    };
    for l in &lines[first..] {
        if let Some(cause) = l.strip_prefix("Caused by: ") {
            let cause = JavaSegment {
                exception: exception_type(cause),
                frames: Vec::new(),
                more: 0,
            };
            done.push(std::mem::replace(&mut seg, cause));
            continue;
        }
        // Deeper lines belong to `Suppressed:` blocks, which are not the stack.
        let Some(own) = l
            .strip_prefix(indent)
            .filter(|o| !o.starts_with([' ', '\t']))
        else {
            continue;
        };
        if let Some(f) = own.strip_prefix("at ").and_then(java_frame) {
            seg.frames.push(f);
        } else if let Some(n) = own
            .strip_prefix("... ")
            .and_then(|r| r.strip_suffix(" more"))
        {
            seg.more = n.trim().parse().unwrap_or(0);
        }
    }
    done.push(seg);
    let mut enclosing: Vec<Frame> = Vec::new();
    let mut exception = String::new();
    for mut seg in done {
        let shared = seg.more.min(enclosing.len());
        seg.frames
            .extend(enclosing.drain(enclosing.len() - shared..));
        enclosing = seg.frames;
        exception = seg.exception;
    }
    (TraceKind::Java, exception, enclosing)
}

/// `f (/app/x.js:6:12)`, `async main (file:///app/x.mjs:3:25)`, `/app/x.js:1:2`,
/// `Function.executeUserEntryPoint [as runMain] (node:internal/modules/run_main:164:12)`.
fn node_frame(rest: &str) -> Option<Frame> {
    let rest = rest.trim_end().trim_end_matches(" {").trim_end();
    let (function, loc) = match rest.strip_suffix(')').and_then(|r| r.rsplit_once(" (")) {
        Some((f, loc)) => (f, loc),
        None => ("", rest),
    };
    let loc = loc.strip_prefix("file://").unwrap_or(loc);
    let mut parts = loc.rsplitn(3, ':');
    let (col, line, path) = (parts.next()?, parts.next()?, parts.next()?);
    if path.is_empty()
        || !col.bytes().all(|c| c.is_ascii_digit())
        || !line.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let function = function.trim_start_matches("async ");
    let function = function.split(" [as ").next().unwrap_or(function);
    let internal = path.starts_with("node:") || path.starts_with("internal/");
    Some(Frame::new(function, &file_ref(path, 2), internal))
}

/// `Ns.T.M(Int32 id) in /src/F.cs:line 42`, `System.Net.Sockets.Socket.Connect(EndPoint remoteEP)`.
fn dotnet_frame(rest: &str) -> Option<Frame> {
    let (call, file) = match rest.rsplit_once(") in ") {
        Some((call, loc)) => {
            let (path, line) = loc.rsplit_once(":line ")?;
            if !line.trim().bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (call, file_ref(path, 1))
        }
        None => (rest.strip_suffix(')')?, String::new()),
    };
    let open = call.find('(')?;
    let function = &call[..open];
    if function.is_empty() || function.contains(' ') {
        return None;
    }
    let internal = function.starts_with("System.") || function.starts_with("Microsoft.");
    Some(Frame::new(function, &file, internal))
}

/// The innermost exception (the last ` ---> ` of the header) and its frames,
/// which .NET prints first, up to `--- End of inner exception stack trace ---`.
fn dotnet(lines: &[&str], first: usize) -> (TraceKind, String, Vec<Frame>) {
    let header = lines[..first]
        .iter()
        .rev()
        .find(|l| l.contains("--->"))
        .and_then(|l| l.rsplit("--->").next())
        .map(exception_type)
        .unwrap_or_else(|| header_type(lines, first));
    let frames = lines[first..]
        .iter()
        .take_while(|l| !l.contains("--- End of inner exception stack trace ---"))
        .filter_map(|l| dotnet_frame(l.trim_start().strip_prefix("at ")?))
        .collect();
    (TraceKind::Dotnet, header, frames)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Traces captured from the real runtimes (see tests/fixtures/traces/README.md).
    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/traces/", $name))
        };
    }

    fn sig(record: &str) -> TraceSignature {
        match signature(record) {
            Some(s) => s,
            None => panic!("not recognised as a trace:\n{record}"),
        }
    }

    /// Two occurrences of each crash, with different messages (ids, user input, paths).
    pub(in crate::fingerprint) fn same_crash_pairs() -> [(&'static str, &'static str); 8] {
        [
            (
                fixture!("java-chain-alice.txt"),
                fixture!("java-chain-bob.txt"),
            ),
            (
                fixture!("java-parse-12x.txt"),
                fixture!("java-parse-oops.txt"),
            ),
            (
                fixture!("python-cause-17.txt"),
                fixture!("python-cause-98.txt"),
            ),
            (fixture!("node-error.txt"), fixture!("node-error-erin.txt")),
            (fixture!("rust-bt-bob.txt"), fixture!("rust-bt-carol.txt")),
            (
                fixture!("rust-plain-alice.txt"),
                fixture!("rust-plain-erin.txt"),
            ),
            (fixture!("go-nil-4711.txt"), fixture!("go-nil-4712.txt")),
            (
                fixture!("dotnet-order-4711.txt"),
                fixture!("dotnet-order-815.txt"),
            ),
        ]
    }

    #[test]
    fn same_crash_different_message_same_signature() {
        for (a, b) in same_crash_pairs() {
            assert_ne!(a, b);
            assert_eq!(sig(a), sig(b), "\n{a}\n--- vs ---\n{b}");
        }
    }

    #[test]
    fn different_exception_or_top_frames_different_signature() {
        let all = [
            fixture!("java-chain-alice.txt"),
            fixture!("java-plain-carol.txt"),
            fixture!("java-parse-12x.txt"),
            fixture!("java-stream.txt"),
            fixture!("python-cause-17.txt"),
            fixture!("python-plain-keyerror.txt"),
            fixture!("python-plain-index.txt"),
            fixture!("python-during.txt"),
            fixture!("python-json.txt"),
            fixture!("node-type-bob.txt"),
            fixture!("node-error.txt"),
            fixture!("node-async.txt"),
            fixture!("rust-bt-bob.txt"),
            fixture!("rust-unwrap.txt"),
            fixture!("rust-plain-unwrap.txt"),
            fixture!("rust-plain-alice.txt"),
            fixture!("go-nil-4711.txt"),
            fixture!("go-custom.txt"),
            fixture!("go-index.txt"),
            fixture!("dotnet-order-4711.txt"),
            fixture!("dotnet-inner.txt"),
        ];
        let keys: Vec<String> = all.iter().map(|r| sig(r).key()).collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn java_uses_the_root_cause_and_its_shared_frames() {
        let s = sig(fixture!("java-stream.txt"));
        assert_eq!(s.kind, TraceKind::Java);
        assert_eq!(s.exception, "java.lang.NumberFormatException");
        assert_eq!(
            s.frames,
            [
                "com.acme.web.OrderController.quantities (OrderController.java:<num>)",
                "com.acme.web.OrderController.main (OrderController.java:<num>)",
            ]
        );
        let s = sig(fixture!("java-chain-alice.txt"));
        assert_eq!(s.exception, "java.lang.IllegalStateException");
        assert_eq!(
            s.frames,
            [
                "com.acme.billing.InvoiceService$Repository.load (InvoiceService.java:<num>)",
                "com.acme.billing.InvoiceService.total (InvoiceService.java:<num>)",
                "com.acme.billing.InvoiceService.main (InvoiceService.java:<num>)",
            ]
        );
        // Five exceptions deep, each `... N more` completed from the one around it.
        let s = sig(fixture!("java-checkout.txt"));
        assert_eq!(s.exception, "java.lang.NumberFormatException");
        assert_eq!(
            s.frames,
            [
                "com.acme.shop.CheckoutService.quantities (CheckoutService.java:<num>)",
                "com.acme.shop.CheckoutService.total (CheckoutService.java:<num>)",
                "com.acme.shop.CheckoutService.lambda$checkout$<num> (CheckoutService.java:<num>)",
                "com.acme.shop.CheckoutService.checkout (CheckoutService.java:<num>)",
                "com.acme.shop.CheckoutService.main (CheckoutService.java:<num>)",
            ]
        );
        assert_eq!(
            sig(fixture!("java-parse-12x.txt")).frames[1],
            "com.acme.billing.InvoiceService.lambda$main$<num> (InvoiceService.java:<num>)"
        );
    }

    #[test]
    fn java_after_a_log_line_with_suppressed_and_packaging_data() {
        let record = "2026-11-22 10:00:00.123 ERROR [main] c.a.Sync - sync failed\n\
            org.postgresql.util.PSQLException: ERROR: duplicate key value\n  Detail: Key (id)=(5) already exists.\n\
            \tat org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:2713) ~[postgresql-42.7.3.jar:42.7.3]\n\
            \tat app//com.acme.Sync.run(Sync.java:88) [app.jar:1.0]\n\
            \tSuppressed: java.io.IOException: close failed\n\
            \t\tat com.acme.Sync.close(Sync.java:99)\n\
            \tat com.acme.Main.main(Main.java:12)";
        let s = sig(record);
        assert_eq!(s.exception, "org.postgresql.util.PSQLException");
        assert_eq!(
            s.frames,
            [
                "org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse (QueryExecutorImpl.java:<num>)",
                "com.acme.Sync.run (Sync.java:<num>)",
                "com.acme.Main.main (Main.java:<num>)",
            ]
        );
    }

    #[test]
    fn python_uses_the_last_traceback_innermost_frame_first() {
        let s = sig(fixture!("python-cause-17.txt"));
        assert_eq!(s.kind, TraceKind::Python);
        assert_eq!(s.exception, "RuntimeError");
        assert_eq!(
            s.frames,
            ["handle (worker.py:<num>)", "<module> (worker.py:<num>)"]
        );
        let s = sig(fixture!("python-json.txt"));
        assert_eq!(s.exception, "json.decoder.JSONDecodeError");
        assert_eq!(
            s.frames,
            [
                "load (worker.py:<num>)",
                "plain (worker.py:<num>)",
                "<module> (worker.py:<num>)"
            ]
        );
    }

    #[test]
    fn go_uses_the_panicking_goroutine_without_runtime_frames() {
        let s = sig(fixture!("go-nil-4711.txt"));
        assert_eq!(s.kind, TraceKind::Go);
        assert_eq!(
            s.exception,
            "runtime error: invalid memory address or nil pointer dereference"
        );
        assert_eq!(
            s.frames,
            [
                "main.(*Server).handle (server.go:<num>)",
                "main.main (main.go:<num>)"
            ]
        );
        let s = sig(fixture!("go-custom.txt"));
        assert_eq!(s.exception, "panic");
        assert_eq!(
            s.frames,
            [
                "example.com/shop/store.(*Store).Get (store.go:<num>)",
                "example.com/shop/store.TestGet (store_test.go:<num>)",
            ]
        );
        assert_eq!(
            sig(fixture!("go-index.txt")).exception,
            "runtime error: index out of range [<num>] with length <num>"
        );
    }

    #[test]
    fn rust_uses_the_location_and_backtrace_without_std_frames() {
        let s = sig(fixture!("rust-bt-bob.txt"));
        assert_eq!(s.kind, TraceKind::Rust);
        assert_eq!(s.exception, "panic");
        assert_eq!(
            s.frames,
            [
                "src/main.rs:<num>:<num>",
                "main::billing::charge (src/main.rs:<num>:<num>)",
                "main::run (src/main.rs:<num>:<num>)",
                "main::main (src/main.rs:<num>:<num>)",
            ]
        );
        assert_eq!(
            sig(fixture!("rust-plain-alice.txt")).frames,
            ["src/main.rs:<num>:<num>"]
        );
        assert_eq!(
            sig(fixture!("rust-plain-unwrap.txt")).exception,
            "panic: called `Result::unwrap()` on an `Err` value"
        );
        let full = sig(fixture!("rust-full.txt"));
        assert_eq!(
            full.frames,
            [
                "src/main.rs:<num>:<num>",
                "main::billing::charge (src/main.rs:<num>:<num>)",
                "main::run (src/main.rs:<num>:<num>)",
                "main::main (src/main.rs:<num>:<num>)",
            ]
        );
        let old = "thread 'main' panicked at 'boom 42', src/lib.rs:2:5\nnote: run with `RUST_BACKTRACE=1`";
        assert_eq!(sig(old).frames, ["src/lib.rs:<num>:<num>"]);
    }

    #[test]
    fn node_skips_internal_frames() {
        let s = sig(fixture!("node-type-bob.txt"));
        assert_eq!(s.kind, TraceKind::Node);
        assert_eq!(s.exception, "TypeError");
        assert_eq!(
            s.frames,
            [
                "profile (server.js:<num>:<num>)",
                "handle (server.js:<num>:<num>)",
                "Object.<anonymous> (server.js:<num>:<num>)",
            ]
        );
        let s = sig(fixture!("node-async.txt"));
        assert_eq!(s.exception, "Error");
        assert_eq!(
            s.frames,
            [
                "readConfig (async.js:<num>:<num>)",
                "main (async.js:<num>:<num>)"
            ]
        );
    }

    #[test]
    fn dotnet_uses_the_innermost_exception() {
        let s = sig(fixture!("dotnet-order-4711.txt"));
        assert_eq!(s.kind, TraceKind::Dotnet);
        assert_eq!(s.exception, "System.InvalidOperationException");
        assert_eq!(
            s.frames,
            [
                "Shop.Orders.OrderService.Cancel (OrderService.cs:<num>)",
                "Shop.Api.OrdersController.Delete (OrdersController.cs:<num>)",
                "Program.<Main>$ (Program.cs:<num>)",
            ]
        );
        let s = sig(fixture!("dotnet-inner.txt"));
        assert_eq!(s.exception, "System.Net.Sockets.SocketException");
        assert_eq!(
            s.frames,
            [
                "Npgsql.Internal.NpgsqlConnector.Connect (NpgsqlConnector.cs:<num>)",
                "Shop.Data.Db.Open (Db.cs:<num>)",
            ]
        );
    }

    #[test]
    fn records_that_are_not_traces_have_no_signature() {
        for record in [
            "java.lang.IllegalStateException: one line only",
            "ERROR build failed\nsee the log above for details\nexit code 2",
            "Traceback (most recent call last):\nKeyboardInterrupt",
            "meeting at noon\n  at the office (room 4)",
        ] {
            assert_eq!(signature(record), None, "{record}");
        }
    }

    #[test]
    fn any_record_is_handled_without_panicking() {
        let parts = [
            "\n",
            "\tat ",
            "    at ",
            "Caused by: ",
            "... 3 more",
            "panic: ",
            "goroutine 1 [running]:",
            "thread 'main' panicked at ",
            "stack backtrace:",
            "  0: ",
            "Traceback (most recent call last):",
            "  File \"",
            "\", line ",
            ", in ",
            "(",
            ")",
            ":",
            " in ",
            ":line ",
            " ---> ",
            "[",
            "]",
            "::h",
            "0x",
            " - ",
            "a.B",
            "X.java",
            "日",
            "'",
            "/",
            "1",
            " {",
            "--- End of inner exception stack trace ---",
        ];
        let mut state = 0x9e37_79b9_u32;
        for _ in 0..50_000 {
            let mut record = String::new();
            for _ in 0..16 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                record.push_str(parts[state as usize % parts.len()]);
            }
            let _ = signature(&record);
        }
    }

    #[test]
    fn the_key_lists_kind_exception_and_frames() {
        let s = TraceSignature {
            kind: TraceKind::Java,
            exception: "java.lang.X".into(),
            frames: vec!["a.B.c (B.java:<num>)".into()],
        };
        assert_eq!(s.key(), "java: java.lang.X\n  at a.B.c (B.java:<num>)");
        assert_eq!(
            signature_with(fixture!("java-stream.txt"), 1).map(|s| s.frames.len()),
            Some(1)
        );
    }
}
